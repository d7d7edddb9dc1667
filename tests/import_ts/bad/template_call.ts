import type { JobDefinition } from '@synthetiq/workflows';

export const orders: JobDefinition = {
  steps: [
    {
      sql: `SELECT * FROM (VALUES (1)) AS t(x)
            WHERE current_date > '${new Date().toISOString()}'`,
      outputTable: 'recent',
    },
  ],
};
