import type { JobDefinition } from '@synthetiq/workflows';

export const orders: JobDefinition = {
  steps: [
    { sql: 'SELECT 1 AS one', outputTable: 'one' }
    { sql: 'SELECT 2 AS two', outputTable: 'two' },
  ],
};
