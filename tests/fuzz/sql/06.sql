DELETE FROM review WHERE stars < (SELECT avg(stars) FROM review) RETURNING name
