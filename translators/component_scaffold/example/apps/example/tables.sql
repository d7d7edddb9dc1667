-- The table syncProducts.json upserts into; the workflows never create tables.
-- Embedded default: sqlite3 .data/apps/example.sqlite < workflow_defs/apps/example/tables.sql
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER,
    synced_at TEXT
);
