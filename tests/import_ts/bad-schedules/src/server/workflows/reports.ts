// Two workflows in one file, neither named after it: a schedule must name the JSON file.
export const daily = { steps: [{ sql: 'SELECT 1 AS one', outputTable: 'one' }] };
export const weekly = { steps: [{ sql: 'SELECT 7 AS seven', outputTable: 'seven' }] };
