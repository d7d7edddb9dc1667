import type { JobDefinition } from '@synthetiq/workflows';

let pageSize = 25;

export const customers: JobDefinition = {
  steps: [{ service: 'crm', operation: 'listCustomers', params: { per_page: pageSize } }],
};
