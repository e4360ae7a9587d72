-- Version 4: review decisions, with history.
-- Each `shenbao review import` is one row in review_imports (who, when, which file); each
-- decision in it one row in reviews. A later import's decision for the same branch becomes the
-- current one; earlier ones stay for the record.
CREATE TABLE review_imports (
    id            INTEGER PRIMARY KEY,
    file_name     TEXT NOT NULL,
    file_sha256   TEXT NOT NULL REFERENCES blobs(sha256),
    imported_by   TEXT NOT NULL,
    imported_at   TEXT NOT NULL,
    decisions     INTEGER NOT NULL
);

CREATE TABLE reviews (
    id            INTEGER PRIMARY KEY,
    import_id     INTEGER NOT NULL REFERENCES review_imports(id),
    sheet_row     INTEGER NOT NULL,
    branch        TEXT NOT NULL,
    level         TEXT NOT NULL,             -- 重点 | 特色 | 一般 | 不立项 (configurable)
    amount_yuan   REAL,
    funded        INTEGER NOT NULL,
    is_current    INTEGER NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX reviews_current ON reviews (branch, is_current);
