import type { JobDefinition } from '@synthetiq/workflows';

// A polling wait: the export is read once the shop says it is ready.
export const waitPoll: JobDefinition = {
  name: 'Polling wait',
  description:
    "Wait until the shop's order export is ready (the demo reports it pending for two polls), " +
    'then read it',
  variables: {
    exportId: { type: 'param', default: 'orders-2026-10' },
  },
  settings: { inlineWaitMaxSeconds: 60 },
  steps: [
    {
      id: 'export_ready',
      wait: {
        poll: {
          service: 'shop',
          operation: 'getExport',
          params: { exportId: '{{var.exportId}}' },
          field: 'export.status',
          equals: 'ready',
        },
        every: '1s',
        timeout: '1m',
      },
    },
    {
      id: 'export',
      service: 'shop',
      operation: 'getExport',
      params: { exportId: '{{var.exportId}}' },
      dataPath: 'export',
      outputTable: 'export',
      outputSchema: { id: 'VARCHAR', status: 'VARCHAR', row_count: 'INTEGER' },
    },
  ],
} as const;
