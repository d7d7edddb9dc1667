import type { JobDefinition } from '@synthetiq/workflows';

const APP_DB = { appId: '{{var.appId}}' } as const;

export const syncEnrichedOrders: JobDefinition = {
  name: 'Sync Enriched Orders',
  description: 'Fetch recent shop orders, enrich them with CRM customers, upsert them into the app database and refresh revenue per customer tier',
  variables: {
    appId: {
      type: 'param',
      default: 'demo-shop',
    },
    since: {
      type: 'dateOffset',
      days: -45,
    },
    notifyChannel: {
      type: 'param',
      optional: true,
      default: 'ops',
    },
  },
  settings: {
    maxParallelSteps: 4,
  },
  steps: [
    {
      id: 'fetch_orders',
      service: 'shop',
      operation: 'listOrders',
      params: {
        since: '{{var.since}}',
        limit: 100,
      },
      paginate: {
        type: 'cursor' as const,
        cursorField: 'nextCursor',
        cursorParam: 'cursor',
        hasMoreField: 'hasMore',
      },
      dataPath: 'data.orders',
      outputTable: 'raw_orders',
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
      id: 'fetch_customers',
      service: 'crm',
      operation: 'listCustomers',
      params: {
        per_page: 25,
      },
      paginate: {
        type: 'pageNumber',
        pageParam: 'page',
        startPage: 1,
      },
      dataPath: 'customers',
      fieldMapping: {
        customer_id: 'id',
        name: 'name',
        email: 'email',
        tier: 'tier',
        country: 'country',
      },
      outputTable: 'customers',
      outputSchema: {
        customer_id: 'VARCHAR',
        name: 'VARCHAR',
        email: 'VARCHAR',
        tier: 'VARCHAR',
        country: 'VARCHAR',
      },
    },
    {
      // Orders of the window, with their customer (a LEFT JOIN: unknown customers stay).
      sql: `
        WITH recent AS (
          SELECT * FROM raw_orders
          WHERE CAST(created_at AT TIME ZONE 'UTC' AS DATE) >= CAST('{{var.since}}' AS DATE)
        )
        SELECT o.order_id, o.customer_id, c.name AS customer_name, c.email AS customer_email,
               COALESCE(c.tier, 'unknown') AS tier, c.country, o.total_cents, o.currency,
               o.status, o.created_at
        FROM recent AS o
        LEFT JOIN customers AS c ON c.customer_id = o.customer_id
        ORDER BY o.order_id
      `,
      outputTable: 'enriched_orders',
    },
    {
      id: 'has_new_orders',
      branch: {
        sql: 'SELECT count(*) > 0 FROM enriched_orders',
      },
    },
    {
      id: 'persist_orders_enriched',
      dependsOn: ['has_new_orders'],
      persistToDatabase: {
        ...APP_DB,
        tableName: 'orders_enriched',
        sourceTable: 'enriched_orders',
        mode: 'upsert',
        upsertKey: ['order_id'],
        fieldMapping: {
          order_id: 'order_id',
          customer_id: 'customer_id',
          customer_name: 'customer_name',
          customer_email: 'customer_email',
          tier: 'tier',
          country: 'country',
          total_cents: 'total_cents',
          currency: 'currency',
          status: 'status',
          created_at: 'created_at',
          synced_at: {
            generate: 'now',
          },
        },
      },
    },
    {
      dependsOn: ['has_new_orders'],
      sql: `
        SELECT tier, CAST('{{var.since}}' AS DATE) AS period_start, count(*) AS order_count,
               CAST(sum(total_cents) AS BIGINT) AS revenue_cents
        FROM enriched_orders
        WHERE status IN ('paid', 'shipped')
        GROUP BY tier
        ORDER BY tier
      `,
      outputTable: 'revenue_by_tier',
    },
    {
      id: 'persist_revenue_by_tier',
      persistToDatabase: {
        ...APP_DB,
        tableName: 'revenue_by_tier',
        sourceTable: 'revenue_by_tier',
        mode: 'replaceAll',
        replaceWhere: {
          matchColumns: ['tier'],
        },
        fieldMapping: {
          tier: 'tier',
          period_start: 'period_start',
          order_count: 'order_count',
          revenue_cents: 'revenue_cents',
          updated_at: {
            generate: 'now',
          },
        },
      },
    },
  ],
};

