import type { JobDefinition } from '@synthetiq/workflows';
import { ORG_ID } from './constants';

export const orders: JobDefinition = {
  steps: [
    {
      service: 'shop',
      operation: 'listOrders',
      params: { orgId: ORG_ID },
      outputTable: 'orders',
      outputSchema: { order_id: 'VARCHAR' },
    },
  ],
};
