const COLUMN = 'order_id';

export const orders = {
  steps: [{ sql: 'SELECT 1 AS order_id', outputTable: 'o', outputSchema: { [COLUMN]: 'VARCHAR' } }],
};
