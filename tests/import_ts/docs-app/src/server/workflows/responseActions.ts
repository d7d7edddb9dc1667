import type { JobDefinition } from '@synthetiq/workflows';

// responseActions: a 404 that means "nothing here" and a 200 that says "rate limited".
export const responseActions: JobDefinition = {
  name: 'Response actions and auth',
  description:
    'Daily stats with a key in the query string (a day without orders answers 404: ignored), ' +
    'then the invoices of four customers with an OAuth2 token (no billing account answers ' +
    '404: ignored; a rate-limited answer is retried)',
  steps: [
    {
      id: 'days',
      sql: `SELECT * FROM (VALUES ('2026-10-30'), ('2026-10-31'), ('2026-11-01')) AS t(day)`,
      outputTable: 'days',
    },
    {
      id: 'daily_stats',
      service: 'stats',
      operation: 'getDaily',
      params: { day: '{{item.day}}' },
      forEach: { source: 'days', itemKey: 'day' },
      dataPath: 'stats',
      outputTable: 'daily_stats',
      outputSchema: { day: 'VARCHAR', orders: 'INTEGER', revenue_cents: 'BIGINT' },
    },
    {
      id: 'customers',
      sql: "SELECT * FROM (VALUES ('cus_001'), ('cus_004'), ('cus_005'), ('cus_012')) AS t(customer_id)",
      outputTable: 'customers',
    },
    {
      id: 'invoices',
      service: 'billing',
      operation: 'listInvoices',
      params: { customerId: '{{item.customer_id}}' },
      forEach: { source: 'customers', itemKey: 'customer_id', parallel: 2 },
      responseActions: [
        { status: 404, contains: 'no billing account', action: 'ignore' },
        { status: 200, contains: 'rate limited', action: 'retry' },
      ] as const,
      retryDelayMs: 200,
      dataPath: 'invoices',
      fieldMapping: {
        customer_id: '{{item.customer_id}}',
        invoice_id: 'invoiceId',
        amount_cents: 'amountCents',
      },
      outputTable: 'invoices',
      outputSchema: { customer_id: 'VARCHAR', invoice_id: 'VARCHAR', amount_cents: 'BIGINT' },
    },
  ],
};
