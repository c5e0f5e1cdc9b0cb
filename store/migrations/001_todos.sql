CREATE TABLE todos (
    id          INTEGER PRIMARY KEY,
    title       TEXT    NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    done_at     TEXT
);
