SELECT 1; SELECT 'a;b' -- c;
FROM t;
