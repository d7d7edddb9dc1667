import type { JobDefinition } from '@synthetiq/workflows';

export const notifyTopCustomers: JobDefinition = {
  name: 'Notify Top Customers',
  description: 'Read the synced orders from the app database, rank the top 5 customers by paid revenue and, when sendNotifications is true, post them to the chat',
  variables: {
    appId: {
      type: 'param',
      default: 'demo-shop',
    },
    sendNotifications: {
      type: 'param',
      default: false,
    },
    notifyChannel: {
      type: 'param',
      default: 'ops',
    },
  },
  steps: [
    {
      id: 'load_orders',
      importFromDatabase: {
        appId: '{{var.appId}}',
        tableName: 'orders_enriched',
        columns: ['order_id', 'customer_id', 'customer_name', 'tier', 'total_cents', 'status'],
      },
      outputTable: 'orders',
    },
    {
      sql: `SELECT customer_id, customer_name AS name, tier, count(*) AS order_count, CAST(sum(total_cents) AS BIGINT) AS revenue_cents, printf('%.2f', sum(total_cents) / 100.0) AS revenue_eur FROM orders WHERE status IN ('paid', 'shipped') GROUP BY customer_id, customer_name, tier ORDER BY revenue_cents DESC, customer_id LIMIT 5`,
      outputTable: 'top_customers',
    },
    {
      id: 'should_notify',
      branch: {
        condition: '{{var.sendNotifications}}',
      },
    },
    {
      id: 'post_header',
      dependsOn: ['should_notify', 'top_customers'],
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{var.notifyChannel}}',
        text: 'Top 5 customers of {{var.appId}} by paid revenue:',
      },
    },
    {
      id: 'pause_before_details',
      wait: {
        duration: '1s',
      },
    },
    {
      id: 'post_top_customers',
      dependsOn: ['should_notify'],
      service: 'chat',
      operation: 'postMessage',
      forEach: {
        source: 'top_customers',
        itemKey: 'customer_id',
        parallel: 1,
      },
      params: {
        channel: '{{var.notifyChannel}}',
        text: '{{item.name}} ({{item.tier}}): {{item.revenue_eur}} EUR from {{item.order_count}} orders',
      },
    },
  ],
};

