import type { JobDefinition } from '@synthetiq/workflows';

const TOTALS = 'customer_totals';

export const forEach: JobDefinition = {
  name: 'A call per row',
  description: "Look up a list of customers one call each (an unknown id is skipped), page through each one's orders, and post one chat message per customer",
  variables: {
    channel: {
      type: 'param',
      default: 'docs',
    },
  },
  steps: [
    {
      sql:
        "SELECT * FROM (VALUES ('cus_001', 'vip'), ('cus_005', 'vip'), " +
        "('cus_999', 'vip'), ('cus_012', 'new')) AS t(customer_id, segment)",
      outputTable: 'wanted',
    },
    {
      id: 'lookup_customers',
      service: 'crm',
      operation: 'getCustomer',
      params: {
        customerId: '{{item.customer_id}}',
      },
      forEach: {
        source: 'wanted',
        itemKey: 'customer_id',
        parallel: 4,
        rateLimit: {
          requestsPerSecond: 10,
        },
        maxRetries: 2,
        retryDelayMs: 200,
        onItemError: 'skip',
      },
      fieldMapping: {
        customer_id: 'id',
        segment: '{{item.segment}}',
      },
      outputTable: 'customers',
      outputSchema: {
        customer_id: 'VARCHAR',
        name: 'VARCHAR',
        tier: 'VARCHAR',
        segment: 'VARCHAR',
      },
    },
    {
      id: 'orders_per_customer',
      service: 'shop',
      operation: 'listCustomerOrders',
      params: {
        customerId: '{{item.customer_id}}',
        limit: 2,
      },
      forEach: {
        source: 'customers',
        itemKey: 'customer_id',
        parallel: 2,
      },
      paginate: {
        type: 'cursor',
        cursorField: 'meta.nextCursor',
        cursorParam: 'cursor',
      },
      dataPath: 'data',
      fieldMapping: {
        customer_id: '{{item.customer_id}}',
        order_id: 'orderId',
      },
      outputTable: 'customer_orders',
      outputSchema: {
        customer_id: 'VARCHAR',
        order_id: 'VARCHAR',
        total_cents: 'BIGINT',
        status: 'VARCHAR',
      },
    },
    {
      sql: `SELECT c.customer_id, c.name, c.segment, count(o.order_id) AS order_count, CAST(coalesce(sum(o.total_cents), 0) AS BIGINT) AS total_cents FROM customers AS c LEFT JOIN customer_orders AS o USING (customer_id) GROUP BY ALL ORDER BY c.customer_id`,
      outputTable: TOTALS,
    },
    {
      id: 'post_per_customer',
      service: 'chat',
      operation: 'postMessage',
      forEach: {
        source: `${TOTALS}`,
        itemKey: 'customer_id',
      },
      params: {
        channel: '{{var.channel}}',
        text: '{{item.name}} ({{item.segment}}): {{item.order_count}} orders',
      },
    },
  ],
};

