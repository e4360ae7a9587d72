-- Version 2: what the Word form and the Excel summary say.
-- Fields are JSON objects (see src/extract/model.rs `Fields`): a handful of optional strings
-- that change with the office's form; a JSON column keeps the schema stable while they do.
ALTER TABLE submissions ADD COLUMN fields TEXT;            -- the fields that count
ALTER TABLE submissions ADD COLUMN fields_source TEXT;     -- 'form' | 'summary' | NULL
ALTER TABLE submissions ADD COLUMN form_fields TEXT;       -- from the 项目申请表, when readable
ALTER TABLE submissions ADD COLUMN summary_fields TEXT;    -- from the 申报汇总表, when readable
ALTER TABLE submissions ADD COLUMN problem_details TEXT;   -- JSON array of {code, detail}
ALTER TABLE attachments ADD COLUMN read_error TEXT;        -- why the reader could not open it
