import type { JobDefinition } from '@synthetiq/workflows';

// Constants of the same file are read by name, spread, and looked up by member.
const SHOP = { service: 'shop' } as const;
const CURSOR_PAGING = {
  type: 'cursor',
  cursorField: 'nextCursor',
  cursorParam: 'cursor',
  hasMoreField: 'hasMore',
} as const;
const PAGE_SIZES = { orders: 1_00, notes: 0x14 };

export const paginate: JobDefinition = {
  name: 'Every pagination style',
  description: 'One step per pagination style of the demo services, and a count of the rows each fetched',
  steps: [
    {
      id: 'orders_by_cursor',
      ...SHOP,
      operation: 'listOrders',
      params: {
        limit: PAGE_SIZES.orders,
      },
      paginate: CURSOR_PAGING,
      dataPath: 'data.orders',
      outputTable: 'orders',
      outputSchema: {
        order_id: 'VARCHAR',
        status: 'VARCHAR',
      },
    },
    {
      id: 'customers_by_page_number',
      service: 'crm',
      operation: 'listCustomers',
      params: {
        per_page: 15,
      },
      paginate: {
        type: 'pageNumber',
        pageParam: 'page',
        startPage: 1,
      },
      dataPath: 'customers',
      outputTable: 'customers',
      outputSchema: {
        id: 'VARCHAR',
        name: 'VARCHAR',
      },
    },
    {
      id: 'products_by_offset',
      service: 'shop',
      operation: 'listProducts',
      paginate: {
        type: 'offset',
        offsetParam: 'offset',
        limitParam: 'limit',
        limitValue: 8,
        startOffset: 0,
      },
      dataPath: 'products',
      outputTable: 'products',
      outputSchema: {
        sku: 'VARCHAR',
        price_cents: 'INTEGER',
      },
    },
    {
      id: 'reviews_by_link_header',
      service: 'shop',
      operation: 'listReviews',
      params: {
        per_page: 25,
      },
      paginate: {
        type: 'link',
        maxPages: 10,
      },
      outputTable: 'reviews',
      outputSchema: {
        review_id: 'VARCHAR',
        rating: 'INTEGER',
      },
    },
    {
      id: 'notes_by_next_url',
      service: 'crm',
      operation: 'listNotes',
      params: {
        limit: PAGE_SIZES['notes'],
      },
      paginate: {
        type: 'nextUrl',
        nextUrlField: 'next',
        maxRetries: 5,
        retryDelayMs: 250,
      },
      dataPath: 'notes',
      outputTable: 'notes',
      outputSchema: {
        note_id: 'VARCHAR',
        customer_id: 'VARCHAR',
      },
    },
    {
      sql: `SELECT 'cursor' AS style, count(*) AS row_count FROM orders UNION ALL SELECT 'pageNumber', count(*) FROM customers UNION ALL SELECT 'offset', count(*) FROM products UNION ALL SELECT 'link', count(*) FROM reviews UNION ALL SELECT 'nextUrl', count(*) FROM notes`,
      outputTable: 'fetched',
    },
  ],
};

