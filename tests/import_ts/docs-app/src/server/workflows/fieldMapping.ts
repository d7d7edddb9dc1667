import type { JobDefinition } from '@synthetiq/workflows';

export const fieldMapping: JobDefinition = {
  name: 'Shaping records into rows',
  description: 'dataPath to a nested array, columns matched by name (camelCase too), dot paths into nested objects and arrays, a JSON column, a missing field, generators, and {{item.X}} in a forEach',
  steps: [
    {
      id: 'shape_orders',
      service: 'shop',
      operation: 'listOrders',
      params: {
        limit: 5,
      },
      dataPath: 'data.orders',
      fieldMapping: {
        customer: 'customerId',
        'first_sku': 'items.0.sku',
        first_quantity: 'items.0.quantity',
        "row_id": {
          generate: 'cuid',
        },
        fetched_at: {
          generate: "now",
        },
      },
      outputTable: 'orders',
      outputSchema: {
        order_id: 'VARCHAR',
        customer: 'VARCHAR',
        total_cents: 'BIGINT',
        created_at: 'TIMESTAMPTZ',
        first_sku: 'VARCHAR',
        first_quantity: 'INTEGER',
        items: 'JSON',
        coupon_code: 'VARCHAR',
        row_id: 'VARCHAR',
        fetched_at: 'TIMESTAMPTZ',
      },
    },
    {
      id: 'customer_of_each_order',
      service: 'crm',
      operation: 'getCustomer',
      params: {
        customerId: '{{item.customer}}',
      },
      forEach: {
        source: 'orders',
        itemKey: 'order_id',
        parallel: 5,
      },
      fieldMapping: {
        order_id: '{{item.order_id}}',
        customer_id: 'id',
        customer_name: 'name',
      },
      outputTable: 'order_customers',
      outputSchema: {
        order_id: 'VARCHAR',
        customer_id: 'VARCHAR',
        customer_name: 'VARCHAR',
        tier: 'VARCHAR',
      },
    },
  ],
};

