-- Scheduling with pg_cron. pg_cron runs in one database per server (the
-- server setting cron.database_name) and starts jobs in any database with
-- cron.schedule_in_database. fifo-db's jobs are named after the database
-- they compute ('fifo-db incremental (db)'), because pg_cron job names are
-- unique per user across the server: two fifo-db databases on one server
-- each keep their own schedule.
--
-- When this database is the cron database, fifo_schedule() and
-- fifo_unschedule() do everything in SQL. Otherwise `fifo-db schedule`
-- connects to the cron database and applies fifo._cron_jobs() there.

-- fifo._setting_if_readable(name): a server setting, or NULL when it is
-- not set or this role may not read it (shared_preload_libraries and
-- pg_cron's cron.* need superuser or pg_read_all_settings, which a managed
-- database's owner does not have).
CREATE OR REPLACE FUNCTION fifo._setting_if_readable(p_name text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN nullif(current_setting(p_name, true), '');
EXCEPTION WHEN insufficient_privilege THEN
    RETURN NULL;
END;
$$;

-- fifo._cron_status(): what this server offers: pg_cron installed
-- (available), preloaded, the cron database, and the extension's version
-- when it is created in the current database. Asked in ways any role may:
-- the settings when readable, else pg_cron's launcher in pg_stat_activity
-- (its application_name and database are visible to every role).
CREATE OR REPLACE FUNCTION fifo._cron_status(
    OUT available boolean,
    OUT preloaded boolean,
    OUT cron_database text,
    OUT extversion text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_libs text := fifo._setting_if_readable('shared_preload_libraries');
    v_launcher text;
BEGIN
    available := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron');
    SELECT a.datname INTO v_launcher
    FROM pg_stat_activity a
    WHERE a.datname IS NOT NULL
      AND (a.backend_type = 'pg_cron launcher'
           OR (a.backend_type IS NULL AND a.application_name = 'pg_cron scheduler'))
    ORDER BY a.backend_type IS NULL, a.backend_start
    LIMIT 1;
    IF v_libs IS NOT NULL THEN
        preloaded := EXISTS (SELECT 1
                             FROM regexp_split_to_table(v_libs, ',') AS l(lib)
                             WHERE btrim(l.lib, ' "''') ~ '(^|/)pg_cron(\.so)?$');
    ELSE
        preloaded := v_launcher IS NOT NULL;
    END IF;
    cron_database := coalesce(fifo._setting_if_readable('cron.database_name'), v_launcher, 'postgres');
    extversion := (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'pg_cron');
END;
$$;

-- fifo._cron_require(extension_created, in_cron_database): raise the one
-- error that says what to fix when pg_cron cannot schedule fifo-db's jobs.
-- extension_created NULL: look in the current database. in_cron_database:
-- the caller will act in the current database, so it must be the cron one.
CREATE OR REPLACE FUNCTION fifo._cron_require(
    p_extension_created boolean DEFAULT NULL,
    p_in_cron_database boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status record := fifo._cron_status();
    v_major text := current_setting('server_version_num')::integer / 10000;
    v_hint text;
BEGIN
    IF NOT v_status.available THEN
        RAISE EXCEPTION 'pg_cron is not installed on this PostgreSQL server'
            USING ERRCODE = '55000',
                  HINT = format('Install it (Debian/Ubuntu: apt-get install postgresql-%s-cron), '
                                'add shared_preload_libraries = ''pg_cron'' and cron.database_name = ''%s'' '
                                'to postgresql.conf, restart PostgreSQL, then run `fifo-db schedule install`.',
                                v_major, current_database());
    END IF;
    IF NOT v_status.preloaded THEN
        RAISE EXCEPTION 'pg_cron is installed but not loaded (shared_preload_libraries is %)',
                coalesce(quote_literal(fifo._setting_if_readable('shared_preload_libraries')),
                         'not readable by ' || quote_ident(current_user) || ', and no pg_cron launcher runs')
            USING ERRCODE = '55000',
                  HINT = format('Add shared_preload_libraries = ''pg_cron'' and cron.database_name = ''%s'' '
                                'to postgresql.conf, restart PostgreSQL, then run `fifo-db schedule install`.',
                                current_database());
    END IF;
    IF p_in_cron_database AND current_database() <> v_status.cron_database THEN
        SELECT format('Run `fifo-db schedule install` (it connects to %1$s for you), or in database '
                      '%1$s run: SELECT cron.schedule_in_database(%2$L, %3$L, %4$L, %5$L);',
                      v_status.cron_database, j.job_name, j.schedule, j.command, j.database)
        INTO v_hint
        FROM fifo._cron_jobs() j LIMIT 1;
        RAISE EXCEPTION 'pg_cron runs in database "%" (cron.database_name), not in "%"',
                v_status.cron_database, current_database()
            USING ERRCODE = '55000', HINT = v_hint;
    END IF;
    IF NOT coalesce(p_extension_created, v_status.extversion IS NOT NULL) THEN
        RAISE EXCEPTION 'pg_cron is loaded but the extension is not created in database "%" (cron.database_name)',
                v_status.cron_database
            USING ERRCODE = '55000',
                  HINT = format('Run `fifo-db schedule install` (it creates it), or as a superuser in '
                                'database %s: CREATE EXTENSION pg_cron;', v_status.cron_database);
    END IF;
END;
$$;

-- fifo._cron_jobs(every, full): the jobs that keep this database current,
-- in the order they are scheduled: the incremental run and the asset view's
-- incremental run every `every`, the forced full recompute at `full`. A NULL schedule means "not scheduled"
-- (the job of that name is only removed).
CREATE OR REPLACE FUNCTION fifo._cron_jobs(
    p_every text DEFAULT '* * * * *',
    p_full text DEFAULT '50 1 * * *')
RETURNS TABLE (job_name text, schedule text, command text, database text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('fifo-db %s (%s)', j.kind, current_database()), j.schedule, j.command, current_database()
    -- schema-qualified: the job runs with the database's default search_path
    FROM (VALUES (1, 'incremental', p_every, 'SELECT public.compute_fifo_incremental()'),
                 (2, 'full', p_full, 'SELECT public.compute_fifo_all(true)'),
                 -- the asset (tax) view, on the incremental schedule: nothing until it was computed
                 -- once, and nothing recorded while nothing changed (sql/420)
                 (3, 'assets', p_every, 'SELECT public.compute_fifo_assets_incremental(true)'))
         AS j(ord, kind, schedule, command)
    ORDER BY j.ord
$$;

-- fifo_unschedule(): remove this database's fifo-db jobs (by name); returns
-- how many were removed. Run in the cron database.
CREATE OR REPLACE FUNCTION public.fifo_unschedule()
RETURNS integer
LANGUAGE plpgsql
-- SECURITY DEFINER: an operator (fifo_grant('operator', ...)) removes the
-- owner's jobs without any right in schema fifo or cron; current_user is the
-- owner here, so only the owner's jobs of this database's names go.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_removed integer;
BEGIN
    PERFORM fifo._cron_require();
    SELECT count(*) INTO v_removed
    FROM (SELECT cron.unschedule(c.jobid)
          FROM cron.job c
          JOIN fifo._cron_jobs() j ON j.job_name = c.jobname
          WHERE c.username = current_user) removed;
    RETURN v_removed;
END;
$$;
COMMENT ON FUNCTION public.fifo_unschedule() IS
    'Remove this database''s fifo-db pg_cron jobs (by name); returns how many. Run in the cron database.';

-- fifo_schedule([every [, full]]): schedule the incremental runs (pair and
-- asset view) every `every` and the forced full recompute at `full` (NULL: no full job),
-- idempotently: this database's jobs are removed by name, then scheduled.
CREATE OR REPLACE FUNCTION public.fifo_schedule(
    p_every text DEFAULT '* * * * *',
    p_full text DEFAULT '50 1 * * *')
RETURNS TABLE (jobid bigint, job_name text, schedule text, command text)
LANGUAGE plpgsql
-- SECURITY DEFINER: an operator schedules without any right in schema fifo
-- or cron; the jobs belong to the owner (pg_cron records current_user, the
-- owner here, as the job's username) and run with the owner's rights.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_every IS NULL THEN
        RAISE EXCEPTION 'the incremental schedule must be given, got NULL'
            USING ERRCODE = '22023', HINT = 'Example: SELECT fifo_schedule(''* * * * *'');';
    END IF;
    PERFORM fifo._cron_require(true);   -- everything but the extension, which we create
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        CREATE EXTENSION pg_cron;
    END IF;
    PERFORM public.fifo_unschedule();
    RETURN QUERY
    SELECT cron.schedule_in_database(j.job_name, j.schedule, j.command, j.database), j.job_name,
           j.schedule, j.command
    FROM fifo._cron_jobs(p_every, p_full) j
    WHERE j.schedule IS NOT NULL;
END;
$$;
COMMENT ON FUNCTION public.fifo_schedule(text, text) IS
    'Schedule compute_fifo_incremental() and compute_fifo_assets_incremental(true) every `every` and '
    'compute_fifo_all(true) at `full` with pg_cron '
    '(idempotent: unschedule by name, then schedule). Run in the cron database; elsewhere use `fifo-db schedule install`.';
