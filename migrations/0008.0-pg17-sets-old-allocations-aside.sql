-- fifo-db 0008.0 (runs just before 0008): on PostgreSQL 17 and later, the
-- allocations of a database that 0008 has not partitioned yet are moved
-- aside into fifo.allocations_held_for_0008 (same ids and columns), leaving
-- fifo.allocations empty; 0008.z puts them back once 0008 has run. From 17 a
-- partition made with CREATE TABLE ... PARTITION OF takes over its table's
-- identity column, and 0008's loop (one partition per version the rows have)
-- then fails at ALTER COLUMN id SET DEFAULT: "column "id" of relation
-- "allocations_v1" is an identity column". On an empty table that loop makes
-- no partition. 0008 has landed and is not edited. Does nothing on 15 and 16,
-- on an empty table, and where 0008 has run (fifo.allocations partitioned).
-- yoyo applies pending migrations in file name order ('0' sorts before 'a').
-- depends: 0007.engine-leg

DO $migration$
BEGIN
    IF pg_catalog.current_setting('server_version_num')::integer < 170000
       OR (SELECT c.relkind FROM pg_catalog.pg_class c
           WHERE c.oid = pg_catalog.to_regclass('fifo.allocations')) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    -- no writer adds rows between the copy and the TRUNCATE (0008 takes this lock next anyway)
    LOCK TABLE ONLY fifo.allocations IN ACCESS EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT FROM ONLY fifo.allocations) THEN
        RETURN;
    END IF;
    CREATE TABLE fifo.allocations_held_for_0008 AS TABLE ONLY fifo.allocations;
    TRUNCATE ONLY fifo.allocations;
END;
$migration$;
