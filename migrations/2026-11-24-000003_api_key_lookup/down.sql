DROP FUNCTION fahwa_api_key_by_hash(bytea);
