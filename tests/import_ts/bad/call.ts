import type { JobDefinition } from '@synthetiq/workflows';

export const orders: JobDefinition = {
  name: 'Orders',
  steps: buildSteps('shop'),
};
