import type { JobDefinition } from '@synthetiq/workflows';

export const orders: JobDefinition = {
  steps: [
    {
      service: 'shop',
      operation: 'listOrders',
      params: { limit: 50 * 2 },
    },
  ],
};
