export const orders = {
  steps: [{ sql: 'SELECT 1 AS one', outputTable: TABLE_NAME }],
};
