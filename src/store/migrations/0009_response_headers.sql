-- The headers of an attempt's response (a JSON object, capped; NULL before this version and for
-- syslog writes), shown in the delivery detail beside the response body.
ALTER TABLE attempts ADD COLUMN response_headers TEXT;
