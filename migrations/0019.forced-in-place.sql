-- fifo-db 0019: the setting forced_in_place_below (issue 16). A forced full
-- recompute (compute_fifo_all(true)) of fewer trades than this, into a version
-- holding fewer rows than this, writes in place, only the rows that differ
-- (sql/050, sql/032), instead of into a fresh table swapped in for the
-- version's partition (sql/035), whose table and index builds cost more than
-- the rows below that size. 0: always the fresh table.
-- depends: 0018.asset-view-change-capture

INSERT INTO fifo.settings (name, value) VALUES ('forced_in_place_below', '10000')
ON CONFLICT (name) DO NOTHING;
