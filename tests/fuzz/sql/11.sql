DELETE FROM review WHERE stars < (SELECT FROM review) RETURNING name
