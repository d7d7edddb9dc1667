import type { JobDefinition } from '@synthetiq/workflows';

/**
 * Service call basics (the docs example).
 */
export const serviceCall = {
  name: 'Service call basics',
  description: 'One customer (a single object is one row), one page of orders (an array at a dataPath), and a chat message sent for its side effect',
  variables: {
    customerId: {
      type: 'param',
      default: 'cus_005',
    },
    channel: {
      type: 'param',
      default: 'docs',
    },
  },
  steps: [
    {
      id: 'get_customer',
      service: 'crm',
      operation: 'getCustomer',
      params: {
        customerId: '{{var.customerId}}',
      },
      outputTable: 'customer',
      outputSchema: {
        id: 'VARCHAR',
        name: 'VARCHAR',
        email: 'VARCHAR',
        tier: 'VARCHAR',
        country: 'VARCHAR',
      },
    },
    {
      id: 'first_orders',
      service: 'shop',
      operation: 'listOrders',
      params: {
        limit: 20,
        since: '2026-10-01',
      },
      dataPath: 'data.orders',
      maxRetries: 5, /* at most 3 at the step level; 5 per request */
      retryDelayMs: 200,
      outputTable: 'orders',
      outputSchema: {
        order_id: 'VARCHAR',
        customer_id: 'VARCHAR',
        total_cents: 'BIGINT',
        status: 'VARCHAR',
        created_at: 'TIMESTAMPTZ',
      },
    },
    {
      id: 'announce',
      dependsOn: ['customer', 'orders'],
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{var.channel}}',
        text: 'Fetched customer {{var.customerId}} and the first orders since 2026-10-01',
      },
    },
  ],
} as JobDefinition;

