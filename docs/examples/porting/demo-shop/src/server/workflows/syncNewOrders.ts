import type { JobDefinition } from '@synthetiq/workflows';

export const syncNewOrders: JobDefinition = {
  name: 'Sync New Orders',
  description: 'Incremental load: fetch only the shop orders created after the newest order of the last successful run (lastValue), and upsert them into the app database',
  variables: {
    appId: {
      type: 'param',
      default: 'demo-shop',
    },
    since: {
      type: 'lastValue',
      from: 'new_orders.created_at',
      initial: '2026-10-25T00:00:00Z',
    },
  },
  steps: [
    {
      id: 'fetch_new_orders',
      service: 'shop',
      operation: 'listOrders',
      params: { createdAfter: '{{var.since}}', limit: 100 },
      paginate: {
        type: 'cursor',
        cursorField: 'nextCursor',
        cursorParam: 'cursor',
        hasMoreField: 'hasMore',
      },
      dataPath: 'data.orders',
      outputTable: 'new_orders',
      outputSchema: {
        order_id: 'VARCHAR',
        customer_id: 'VARCHAR',
        total_cents: 'BIGINT',
        currency: 'VARCHAR',
        status: 'VARCHAR',
        created_at: 'TIMESTAMPTZ',
      },
    },
    {
      id: 'persist_new_orders',
      persistToDatabase: {
        appId: '{{var.appId}}',
        tableName: 'orders_enriched',
        sourceTable: 'new_orders',
        mode: 'upsert',
        upsertKey: ['order_id'],
        fieldMapping: {
          order_id: 'order_id',
          customer_id: 'customer_id',
          total_cents: 'total_cents',
          currency: 'currency',
          status: 'status',
          created_at: 'created_at',
          synced_at: { generate: 'now' },
        },
      },
    },
  ],
};
