import type { JobDefinition } from '@synthetiq/workflows';

export const customers: JobDefinition = {
  steps: [
    { sql: "SELECT 'cus_001' AS customer_id", outputTable: 'wanted' },
    {
      service: 'crm',
      operation: 'getCustomer',
      params: { customerId: `${item.customer_id}` },
      forEach: { source: 'wanted', itemKey: 'customer_id' },
    },
  ],
};
