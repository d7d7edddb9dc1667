import type { JobDefinition } from '@synthetiq/workflows';

export const customerOrderHistory: JobDefinition = {
  name: 'Customer Order History',
  description: "List the CRM customers, fetch each customer's orders from the shop (a paginated call per customer, 4 at a time, rate limited, failed customers skipped), summarise the orders per customer and upsert the summaries",
  variables: {
    appId: {
      type: 'param',
      default: 'demo-shop',
    },
    pageSize: {
      type: 'param',
      default: 5,
    },
  },
  steps: [
    {
      id: 'fetch_customers',
      service: 'crm',
      operation: 'listCustomers',
      params: {
        per_page: 25,
      },
      paginate: {
        type: 'pageNumber',
        pageParam: 'page',
      },
      dataPath: 'customers',
      fieldMapping: {
        customer_id: 'id',
      },
      outputTable: 'customers',
      outputSchema: {
        customer_id: 'VARCHAR',
        name: 'VARCHAR',
        tier: 'VARCHAR',
      },
    },
    {
      id: 'fetch_customer_orders',
      service: 'shop',
      operation: 'listCustomerOrders',
      params: {
        customerId: '{{item.customer_id}}',
        limit: '{{var.pageSize}}',
      },
      forEach: {
        source: 'customers',
        itemKey: 'customer_id',
        parallel: 4,
        rateLimit: {
          requestsPerSecond: 50,
        },
        onItemError: 'skip',
      },
      paginate: {
        type: 'cursor',
        cursorField: 'meta.nextCursor',
        cursorParam: 'cursor',
        maxRetries: 2,
        retryDelayMs: 500,
      },
      dataPath: 'data',
      fieldMapping: {
        customer_id: '{{item.customer_id}}',
        customer_name: '{{item.name}}',
        tier: '{{item.tier}}',
        order_id: 'orderId',
      },
      outputTable: 'customer_orders',
      outputSchema: {
        customer_id: 'VARCHAR',
        customer_name: 'VARCHAR',
        tier: 'VARCHAR',
        order_id: 'VARCHAR',
        total_cents: 'BIGINT',
        status: 'VARCHAR',
        created_at: 'TIMESTAMPTZ',
        items: 'JSON',
      },
    },
    {
      sql: `SELECT customer_id, customer_name, tier, count(*) AS order_count, count(*) FILTER (WHERE status IN ('paid', 'shipped')) AS paid_order_count, CAST(sum(json_array_length(items)) AS INTEGER) AS item_count, CAST(coalesce(sum(total_cents) FILTER (WHERE status IN ('paid', 'shipped')), 0) AS BIGINT) AS revenue_cents, min(created_at) AS first_order_at, max(created_at) AS last_order_at FROM customer_orders GROUP BY customer_id, customer_name, tier ORDER BY customer_id`,
      outputTable: 'order_history',
    },
    {
      id: 'persist_customer_order_history',
      persistToDatabase: {
        appId: '{{var.appId}}',
        tableName: 'customer_order_history',
        sourceTable: 'order_history',
        mode: 'upsert',
        upsertKey: ['customer_id'],
        fieldMapping: {
          customer_id: 'customer_id',
          customer_name: 'customer_name',
          tier: 'tier',
          order_count: 'order_count',
          paid_order_count: 'paid_order_count',
          item_count: 'item_count',
          revenue_cents: 'revenue_cents',
          first_order_at: 'first_order_at',
          last_order_at: 'last_order_at',
          synced_at: {
            generate: 'now',
          },
        },
      },
    },
  ],
};

