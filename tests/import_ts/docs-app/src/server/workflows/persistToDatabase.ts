import type { JobDefinition } from '@synthetiq/workflows';

export default {
  name: 'Persist to the app database',
  description: 'Fetch the products, then upsert them (skipping rows the table refuses), append a stock snapshot per product, and replace the stock totals of each category',
  variables: {
    appId: {
      type: 'param',
      default: 'docs',
    },
  },
  steps: [
    {
      id: 'fetch_products',
      service: 'shop',
      operation: 'listProducts',
      paginate: {
        type: 'offset',
        offsetParam: 'offset',
        limitParam: 'limit',
        limitValue: 10,
      },
      dataPath: 'products',
      outputTable: 'products',
      outputSchema: {
        sku: 'VARCHAR',
        name: 'VARCHAR',
        category: 'VARCHAR',
        price_cents: 'INTEGER',
        stock: 'INTEGER',
        active: 'BOOLEAN',
      },
    },
    {
      id: 'upsert_catalog',
      persistToDatabase: {
        appId: '{{var.appId}}',
        tableName: 'catalog_products',
        sourceTable: 'products',
        mode: 'upsert',
        upsertKey: ['sku'],
        onRowError: 'skip',
        fieldMapping: {
          sku: 'sku',
          name: 'name',
          category: 'category',
          price_cents: 'price_cents',
          active: 'active',
          synced_at: {
            generate: 'now',
          },
        },
      },
    },
    {
      id: 'append_snapshots',
      persistToDatabase: {
        appId: '{{var.appId}}',
        tableName: 'stock_snapshots',
        sourceTable: 'products',
        mode: 'append',
        fieldMapping: {
          id: {
            generate: 'cuid',
          },
          sku: 'sku',
          stock: 'stock',
          taken_at: {
            generate: 'now',
          },
        },
      },
    },
    {
      sql: `SELECT category, count(*) AS sku_count, CAST(sum(stock) AS INTEGER) AS total_stock FROM products WHERE active GROUP BY category ORDER BY category`,
      outputTable: 'stock_by_category',
    },
    {
      id: 'replace_category_stock',
      persistToDatabase: {
        appId: '{{var.appId}}',
        tableName: 'category_stock',
        sourceTable: 'stock_by_category',
        mode: 'replaceAll',
        replaceWhere: {
          matchColumns: ['category'],
        },
        fieldMapping: {
          category: 'category',
          sku_count: 'sku_count',
          total_stock: 'total_stock',
          updated_at: {
            generate: 'now',
          },
        },
      },
    },
  ],
} satisfies JobDefinition;

