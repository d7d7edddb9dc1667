import type { JobDefinition } from '@synthetiq/workflows';
import { baseStep } from './shared';

export const orders: JobDefinition = {
  steps: [
    { sql: 'SELECT 1 AS one', outputTable: 'one' },
    { ...baseStep, outputTable: 'orders' },
  ],
};
