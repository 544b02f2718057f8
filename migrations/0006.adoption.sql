-- fifo-db 0006: what `fifo-db install --adopt` changed in a database it
-- adopted (a trading bot's own trade_records taken over in place), so that
-- `fifo-db uninstall --restore` can put the database back exactly as it was.
-- Both tables stay empty on a fresh install.
--
-- Note for later migrations: on an adopted database public.trade_records is
-- the bot's table (setting trades_source <> 'fifo-db'); a migration that
-- alters public.trade_records must check that setting first.
-- depends: 0005.stale-marks-and-change-retention

-- One row when this database was adopted.
CREATE TABLE fifo.adoption (
    adopted        boolean     PRIMARY KEY DEFAULT true,
    adopted_at     timestamptz NOT NULL DEFAULT now(),
    trades_table   text        NOT NULL,   -- the table taken over in place: public.trade_records
    trades_source  text        NOT NULL,   -- its mapping (sql/015_trades_source.sql)
    legacy_tables  text[]      NOT NULL,   -- the bot's tables moved from public to fifo_legacy, same names
    triggers       text[]      NOT NULL,   -- the triggers fifo-db added to trades_table
    public_objects text[]      NOT NULL,   -- what public held before (regclass/regprocedure text), never dropped by uninstall
    pg_cron_existed boolean    NOT NULL,   -- the pg_cron extension existed in this database before
    fifo_schema_existed boolean NOT NULL,  -- an empty schema fifo existed before (an earlier failed install)
    bot_version    integer     NOT NULL,   -- the bot's highest allocation_version, made fifo-db's current_version
    CONSTRAINT one_adoption_per_database CHECK (adopted)
);
COMMENT ON TABLE fifo.adoption IS
    'What `fifo-db install --adopt` changed; read by `fifo-db uninstall --restore`. Empty unless adopted.';

-- The views that depended on the moved tables, with their original
-- definitions, re-pointed at fifo-db's replacement views by the adoption.
CREATE TABLE fifo.adoption_views (
    position   integer PRIMARY KEY,   -- dependency order: a view comes after the views it reads
    view_name  text    NOT NULL UNIQUE,   -- schema-qualified, quoted as needed
    definition text    NOT NULL,   -- pg_get_viewdef before adoption, every name schema-qualified
    reloptions text[],             -- security_barrier, check_option, ...
    columns    text[]  NOT NULL    -- 'name type' before adoption
);
COMMENT ON TABLE fifo.adoption_views IS
    'Views that read the bot''s tables before adoption: original definitions, restored by `fifo-db uninstall --restore`.';

-- Which rows of an adopted trades table are fills (read by the mapping's
-- filter; fifo-db's own trade_records has no status and ignores it):
-- '*' every row, else a comma list of statuses.
INSERT INTO fifo.settings (name, value) VALUES ('fill_statuses', '*')
ON CONFLICT (name) DO NOTHING;
