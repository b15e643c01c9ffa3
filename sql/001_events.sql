-- The events table as the old pipeline created it: the same columns,
-- constraint and indexes. On a database that already has it, nothing changes.
CREATE TABLE IF NOT EXISTS events (
    event_id SERIAL PRIMARY KEY,
    user_id INT,
    user_name VARCHAR(255),
    user_email VARCHAR(255),
    event_type VARCHAR(50),
    product_id INT,
    product_name VARCHAR(150),
    product_category VARCHAR(100),
    product_price DECIMAL(10, 2),
    event_time TIMESTAMP,
    CONSTRAINT valid_event_type CHECK (event_type IN ('view', 'purchase'))
);
CREATE INDEX IF NOT EXISTS idx_event_time ON events (event_time);
CREATE INDEX IF NOT EXISTS idx_user_id ON events (user_id);
