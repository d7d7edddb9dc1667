import type { JobDefinition } from '@synthetiq/workflows';

const variablesJob: JobDefinition = {
  name: 'Variables and templates',
  description: "Params (required, with a default, optional), dates from the run's logical time, and how templates render in params and SQL",
  variables: {
    runLabel: {
      type: 'param',
    },
    minTotalCents: {
      type: 'param',
      default: 10_000,
    },
    status: {
      type: 'param',
      optional: true,
    },
    since: {
      type: 'dateOffset',
      days: -30, // thirty days before the logical time
    },
    today: {
      type: 'dateOffset',
    },
    startedAt: {
      type: 'now',
    },
    channel: {
      type: 'param',
      default: 'docs',
    },
  },
  steps: [
    {
      id: 'fetch_recent_orders',
      service: 'shop',
      operation: 'listOrders',
      params: {
        since: '{{var.since}}',
        limit: 100,
      },
      paginate: {
        type: 'cursor',
        cursorField: 'nextCursor',
        cursorParam: 'cursor',
        hasMoreField: 'hasMore',
      },
      dataPath: 'data.orders',
      outputTable: 'recent_orders',
      outputSchema: {
        order_id: 'VARCHAR',
        total_cents: 'BIGINT',
        status: 'VARCHAR',
        created_at: 'TIMESTAMPTZ',
      },
    },
    {
      sql: `SELECT '{{var.runLabel}}' AS run_label, 'orders since {{var.since}} (run {{var.runLabel}})' AS title, CAST('{{var.since}}' AS DATE) AS since, CAST('{{var.today}}' AS DATE) AS today, CAST('{{var.startedAt}}' AS TIMESTAMPTZ) AS logical_time, count(*) AS order_count, CAST(coalesce(sum(total_cents), 0) AS BIGINT) AS total_cents FROM recent_orders WHERE total_cents >= {{var.minTotalCents}} AND ({{var.status}} IS NULL OR status = {{var.status}})`,
      outputTable: 'summary',
    },
    {
      id: 'report',
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{var.channel}}',
        text: 'Run {{var.runLabel}}: orders of at least {{var.minTotalCents}} cents since {{var.since}}, status {{var.status}}',
      },
      dependsOn: ['summary'],
    },
  ],
};


export { variablesJob as variables };
