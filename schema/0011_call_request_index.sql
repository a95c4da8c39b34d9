-- Version 11: find one call by its request id (`GET /api/admin/calls?request_id=`, the
-- console's call log), as a client quotes it from `x-request-id`.
CREATE INDEX model_calls_request ON model_calls (request_id);
