// Several workflows may share one file; each export becomes its own JSON file.
import type { JobDefinition } from "@synthetiq/workflows"

export const branch: JobDefinition = {
  name: 'Branches',
  description: 'Post an alert to the chat only when enough orders were refunded (branch.sql), and a summary only when notify is true (branch.condition); skipped steps skip what depends on them',
  variables: {
    maxRefunds: {
      type: 'param',
      default: 30,
    },
    notify: {
      type: 'param',
      default: false,
    },
    channel: {
      type: 'param',
      default: 'docs',
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
        status: 'VARCHAR',
        total_cents: 'BIGINT',
      },
    },
    {
      sql: `SELECT count(*) AS refunds, CAST(coalesce(sum(total_cents), 0) AS BIGINT) AS refunded_cents FROM orders WHERE status = 'refunded'`,
      outputTable: 'refunds',
    },
    {
      id: 'too_many_refunds',
      branch: {
        sql: 'SELECT refunds > {{var.maxRefunds}} FROM refunds',
      },
    },
    {
      id: 'alert',
      dependsOn: ['too_many_refunds'],
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{var.channel}}',
        text: 'More than {{var.maxRefunds}} refunded orders!',
      },
      outputTable: 'alert_message',
      outputSchema: {
        id: 'VARCHAR',
        text: 'VARCHAR',
      },
    },
    {
      sql: `SELECT id AS alert_id, current_date AS alerted_on FROM alert_message`,
      outputTable: 'alert_log',
    },
    {
      id: 'wants_summary',
      branch: {
        condition: '{{var.notify}}',
      },
    },
    {
      id: 'post_summary',
      dependsOn: ['wants_summary', 'refunds'],
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{var.channel}}',
        text: 'Refund check done',
      },
    },
  ],
};

export const wait: JobDefinition = {
  name: "Waiting",
  description: "Take a timestamp, wait two seconds, take another; then wait until a time given at launch (the default is in the past, so no wait)",
  variables: {
    notBefore: {
      type: "param",
      default: "2026-01-01T00:00:00Z",
    },
  },
  settings: {
    inlineWaitMaxSeconds: 60,
  },
  steps: [
    {
      sql: "SELECT 'before' AS label, now() AS taken_at",
      outputTable: "before_wait",
    },
    {
      id: "pause",
      wait: {
        duration: "2s",
      },
    },
    {
      sql: 'SELECT \'after\' AS label, now() AS taken_at', // escaped quotes
      outputTable: "after_wait",
    },
    {
      id: "hold_until",
      wait: {
        until: "{{var.notBefore}}",
      },
    },
    {
      sql: `SELECT label, taken_at FROM before_wait UNION ALL SELECT label, taken_at FROM after_wait ORDER BY taken_at`,
      outputTable: "timeline",
    },
  ],
}

