DROP TABLE public.temples;
DROP TABLE public.taverns;
DROP TABLE public.shops;
