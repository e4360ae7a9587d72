-- Version 2 for PostgreSQL (see ../0002_fields.sql): what the Word form and the Excel summary say.
ALTER TABLE submissions ADD COLUMN fields TEXT;
ALTER TABLE submissions ADD COLUMN fields_source TEXT;
ALTER TABLE submissions ADD COLUMN form_fields TEXT;
ALTER TABLE submissions ADD COLUMN summary_fields TEXT;
ALTER TABLE submissions ADD COLUMN problem_details TEXT;
ALTER TABLE attachments ADD COLUMN read_error TEXT;
