-- fifo-db 0007: the engine's packed point. Each point of fifo._match's line
-- (a lot's end, a sell's end, or the end of a sell's unmatched gap) carries
-- its trade's columns as one fifo.leg value, so the backward walk finds a
-- segment's lot and sell with one running min each (the point with the
-- lowest coordinate seen so far), columns and all. coord comes first: it is
-- what min compares.
-- depends: 0006.adoption

CREATE TYPE fifo.leg AS (
    coord    numeric,
    order_id text,
    price    numeric,
    fee      numeric,
    size     numeric,
    at       timestamptz
);
