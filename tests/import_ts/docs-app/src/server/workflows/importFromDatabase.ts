import type { JobDefinition } from '@synthetiq/workflows';

const appId = '{{var.appId}}';

export const importFromDatabase: JobDefinition = {
  name: 'Import from the app database',
  description: 'Read a whole reference table, read the customers with one flag (whereColumn/whereValue, columns, fieldMapping with a generator), and join both with the CRM',
  variables: {
    appId: {
      type: 'param',
      default: 'docs',
    },
    flag: {
      type: 'param',
      default: 'churn-risk',
    },
  },
  steps: [
    {
      id: 'load_targets',
      importFromDatabase: {
        appId,
        tableName: 'tier_targets',
      },
      outputTable: 'targets',
    },
    {
      id: 'load_flagged',
      importFromDatabase: {
        appId,
        tableName: 'customer_flags',
        columns: ['customer_id', 'owner', 'flagged_on'],
        whereColumn: 'flag',
        whereValue: '{{var.flag}}',
        fieldMapping: {
          customer_id: 'customer_id',
          account_owner: 'owner',
          flagged_on: 'flagged_on',
          import_id: {
            generate: 'uuid',
          },
        },
      },
      outputTable: 'flagged',
      outputSchema: {
        customer_id: 'VARCHAR',
        account_owner: 'VARCHAR',
        flagged_on: 'DATE',
        import_id: 'UUID',
      },
    },
    {
      id: 'fetch_customers',
      service: 'crm',
      operation: 'listCustomers',
      params: {
        per_page: 100,
      },
      paginate: {
        type: 'pageNumber',
        pageParam: 'page',
      },
      dataPath: 'customers',
      fieldMapping: {
        customer_id: 'id',
      },
      outputTable: 'customers',
      outputSchema: {
        customer_id: 'VARCHAR',
        name: 'VARCHAR',
        tier: 'VARCHAR',
      },
    },
    {
      sql: `SELECT f.customer_id, c.name, c.tier, f.account_owner, f.flagged_on, t.monthly_target_cents FROM flagged AS f JOIN customers AS c USING (customer_id) LEFT JOIN targets AS t ON t.tier = c.tier ORDER BY f.customer_id`,
      outputTable: 'flagged_customers',
    },
  ],
};

