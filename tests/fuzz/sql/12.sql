DELETE FROM review WHERE stars < (SELECT 1 FROM review) RETURNING name
