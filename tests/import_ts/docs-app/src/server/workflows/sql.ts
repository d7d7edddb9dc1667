import type { JobDefinition } from '@synthetiq/workflows';

export const sql: JobDefinition = {
  name: 'SQL steps',
  description: 'Aggregate paid orders per status with a bound variable, cast the result to a declared schema, and explode the JSON items of each order',
  variables: {
    minTotalCents: {
      type: 'param',
      default: 5000,
    },
    statuses: {
      type: 'param',
      default: ['paid', 'shipped'] as const, // a readonly tuple in TS, a list in JSON
    },
  },
  steps: [
    {
      id: 'fetch_orders',
      service: 'shop',
      operation: 'listOrders',
      params: {
        limit: 100,
      },
      paginate: {
        type: 'cursor',
        cursorField: 'nextCursor',
        cursorParam: 'cursor',
        hasMoreField: 'hasMore',
      },
      dataPath: 'data.orders',
      outputTable: 'orders',
      outputSchema: {
        order_id: 'VARCHAR',
        customer_id: 'VARCHAR',
        total_cents: 'BIGINT',
        status: 'VARCHAR',
        created_at: 'TIMESTAMPTZ',
        items: 'JSON',
      },
    },
    {
      // Bound variables: {{var.X}} is a workflow template, kept as text.
      sql: `
        SELECT status, count(*) AS order_count, sum(total_cents) / 100.0 AS revenue_eur
        FROM orders
        WHERE total_cents >= {{var.minTotalCents}}
          AND list_contains({{var.statuses}}, status)
        GROUP BY status
        ORDER BY status
      `,
      outputTable: 'big_orders_by_status',
      outputSchema: {
        status: 'VARCHAR',
        order_count: 'INTEGER',
        revenue_eur: 'DECIMAL(12,2)',
      },
    },
    {
      /* JSON inside SQL inside TypeScript: the template literal needs no escapes */
      sql: `WITH lines AS (
          SELECT order_id, unnest(from_json(items, '[{"sku": "VARCHAR", "quantity": "INTEGER", "unitPriceCents": "INTEGER"}]'), recursive := true)
          FROM orders
        )
        SELECT sku, CAST(sum(quantity) AS INTEGER) AS units, count(DISTINCT order_id) AS orders
        FROM lines GROUP BY sku ORDER BY units DESC, sku`,
      outputTable: 'units_by_sku',
    },
  ],
} as const;

