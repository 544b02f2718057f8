-- The asset (tax) view, explained: explain_fifo_asset(id).

-- fifo._asset_route(path): how a piece got where it is: the transfers its path
-- names ('/t1/t2'), in order, as 't1 exchange -> cold 2024-05-01 10:00'.
CREATE OR REPLACE FUNCTION fifo._asset_route(p_path text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(CASE WHEN x.id = fifo._asset_transition_marker() AND t.transfer_id IS NULL
                           THEN 'the 2025 allocation of unused basis to the wallet (Rev. Proc. 2024-28, sql/415)'
                           ELSE format('%s %s -> %s %s', x.id, t.from_account, t.to_account,
                                       to_char(t.at AT TIME ZONE fifo._report_tz(), 'YYYY-MM-DD HH24:MI')) END,
                      ', ' ORDER BY x.n)
    FROM unnest(string_to_array(nullif(ltrim(p_path, '/'), ''), '/')) WITH ORDINALITY AS x(id, n)
    LEFT JOIN fifo.transfers t ON t.transfer_id = x.id
$$;

-- fifo._asset_seq(kind, disposal_id, ref_id): a disposal's order among those
-- of one instant in one pool, as the engine orders them (a transfer before its fee).
CREATE OR REPLACE FUNCTION fifo._asset_seq(p_kind text, p_disposal_id text, p_ref_id text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_kind WHEN 'transfer' THEN '1 ' || p_ref_id || ' a' WHEN 'transfer_fee' THEN '1 ' || p_ref_id || ' b'
                ELSE '2 ' || p_disposal_id END
$$;

-- explain_fifo_asset(id): how the asset view treats one trade (by order_id) or
-- one transfer (by transfer_id), step by step: its legs (what each acquires or
-- disposes of, valued how, or why it has no value), then each lot piece every
-- disposal took, with the lot's acquisition, the transfers that brought it into
-- the wallet and how much of it earlier disposals had taken, then any unmatched
-- part; for an acquisition, where its units went. Reads the last
-- compute_fifo_assets() run.
CREATE OR REPLACE FUNCTION public.explain_fifo_asset(p_id text)
RETURNS TABLE (step integer, kind text, wallet text, asset text, lot_id text, acquired_at timestamptz,
               quantity numeric, cost_basis numeric, proceeds numeric, gain numeric, note text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER   -- readers explain a disposal without any right on fifo-db's internal tables
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM fifo._require_text('id', p_id);
    IF NOT EXISTS (SELECT 1 FROM fifo.asset_runs r WHERE r.finished_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the asset view has not been computed'
            USING ERRCODE = '55000', HINT = 'Run SELECT compute_fifo_assets(); (or fifo-db assets compute) first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM fifo.asset_legs g WHERE g.order_id = p_id)
       AND NOT EXISTS (SELECT 1 FROM fifo.asset_allocations a WHERE a.ref_id = p_id) THEN
        RAISE EXCEPTION 'no trade leg or transfer "%" in the asset view', fifo._shown(p_id)
            USING ERRCODE = 'P0002',
                  HINT = 'Give an order_id or a transfer_id, exact and case-sensitive; a trade whose symbol does '
                         'not split or whose legs are all in the filer''s currency has no legs.';
    END IF;
    RETURN QUERY
    WITH legs AS (
        SELECT g.leg_id AS id, g.leg AS kind, g.wallet, g.asset, g.direction, g.quantity, g.value, g.at, g.unpriced
        FROM fifo.asset_legs g WHERE g.order_id = p_id
        UNION ALL
        SELECT DISTINCT ON (a.disposal_id) a.disposal_id, a.kind, a.wallet, a.asset, 'dispose',
               sum(a.quantity) OVER (PARTITION BY a.disposal_id),
               sum(a.proceeds) OVER (PARTITION BY a.disposal_id), a.disposed_at,
               CASE WHEN a.unpriced THEN 'no price' END
        FROM fifo.asset_allocations a WHERE a.ref_id = p_id AND a.kind IN ('transfer', 'transfer_fee')
    ),
    steps AS (
        SELECT 0 AS grp, fifo._asset_seq(l.kind, l.id, p_id) AS ord1, ''::text AS ord2, l.kind || ' ' || l.direction AS kind, l.wallet, l.asset,
               NULL::text AS lot_id, NULL::timestamptz AS acquired_at, l.quantity,
               CASE WHEN l.direction = 'acquire' THEN l.value END AS cost_basis,
               CASE WHEN l.direction = 'dispose' THEN l.value END AS proceeds, NULL::numeric AS gain,
               CASE WHEN l.kind = 'transfer' THEN 'moves lots to another wallet: realizes nothing'
                    WHEN l.value IS NULL THEN 'no value: ' || coalesce(l.unpriced, 'no price') || ' (flagged, left out of totals)'
                    WHEN l.direction = 'acquire' THEN 'a new lot; its basis in the filer''s currency'
                    ELSE 'proceeds in the filer''s currency' END AS note
        FROM legs l
        UNION ALL
        -- the pieces each disposal took, earliest acquired first
        SELECT 1, fifo._asset_seq(a.kind, a.disposal_id, a.ref_id), coalesce(to_char(a.acquired_at, 'YYYYMMDDHH24MISSUS'), 'z') || coalesce(a.lot_id, ''),
               CASE WHEN a.unmatched THEN 'unmatched' ELSE 'lot' END, a.wallet, a.asset, a.lot_id, a.acquired_at,
               a.quantity, a.cost_basis, a.proceeds, a.gain,
               CASE WHEN a.unmatched
                    THEN format('the wallet held no more %s at this point (oversold): no basis, never charged to a later lot', a.asset)
                    ELSE concat_ws('; ',
                        format('acquired %s by %s (%s) in %s', fifo._report_clock(lo.acquired_at), lo.origin_order,
                               lo.origin_leg, coalesce((SELECT g.account FROM fifo.asset_legs g
                                                        WHERE g.leg_id = lo.origin_order || ':' || lo.origin_leg), '?')),
                        CASE WHEN lo.path <> '' THEN 'moved by ' || fifo._asset_route(lo.path) END,
                        CASE WHEN u.before > 0 THEN format('%s of its %s taken before', trim_scale(u.before),
                                                           trim_scale(lo.quantity)) END,
                        CASE WHEN a.kind = 'transfer' THEN format('arrives in %s keeping date and basis', a.to_wallet) END,
                        CASE WHEN a.acquired_at IS NOT NULL THEN
                            CASE WHEN (a.disposed_at AT TIME ZONE fifo._report_tz())::date
                                      > fifo._long_term_after((a.acquired_at AT TIME ZONE fifo._report_tz())::date,
                                                              fifo._long_term_rule(), fifo._long_term_days())
                                 THEN 'long-term' ELSE 'short-term' END END) END
        FROM fifo.asset_allocations a
        LEFT JOIN fifo.asset_lots lo ON lo.wallet = a.wallet AND lo.asset = a.asset AND lo.lot_id = a.lot_id
        LEFT JOIN LATERAL (
            SELECT coalesce(sum(b.quantity), 0) AS before
            FROM fifo.asset_allocations b
            WHERE b.wallet = a.wallet AND b.asset = a.asset AND b.lot_id = a.lot_id
              AND (b.disposed_at, fifo._asset_seq(b.kind, b.disposal_id, b.ref_id) COLLATE "C")
                  < (a.disposed_at, fifo._asset_seq(a.kind, a.disposal_id, a.ref_id) COLLATE "C")) u ON true
        WHERE a.disposal_id IN (SELECT l.id FROM legs l WHERE l.direction = 'dispose')
        UNION ALL
        -- where an acquisition's units went (in its wallet and, by transfers, elsewhere)
        SELECT 2, l.id, to_char(a.disposed_at, 'YYYYMMDDHH24MISSUS') || a.disposal_id,
               'went to ' || a.kind, a.wallet, a.asset, a.lot_id, a.acquired_at, a.quantity, a.cost_basis,
               a.proceeds, a.gain,
               format('%s on %s%s', a.disposal_id, fifo._report_clock(a.disposed_at),
                      CASE WHEN a.to_wallet IS NOT NULL THEN ' to ' || a.to_wallet ELSE '' END)
        FROM legs l
        JOIN fifo.asset_allocations a ON a.lot_id = l.id OR a.lot_id LIKE l.id || '/%'
        WHERE l.direction = 'acquire'
    )
    SELECT (row_number() OVER (ORDER BY s.grp, s.ord1 COLLATE "C", s.ord2 COLLATE "C"))::integer - 1,
           s.kind, s.wallet, s.asset, s.lot_id, s.acquired_at, s.quantity, s.cost_basis, s.proceeds, s.gain, s.note
    FROM steps s
    ORDER BY s.grp, s.ord1 COLLATE "C", s.ord2 COLLATE "C";
END;
$$;
COMMENT ON FUNCTION public.explain_fifo_asset(text) IS
    'How the asset view treats one trade (order_id) or transfer (transfer_id): legs, lot pieces, where units went.';
