-- Least privilege: only the role that runs migrations owns billing's tables and functions. The
-- API and workers log in as a member of hanzo_app (read and write rows: functions/grants.sql),
-- Ponder as a member of hanzo_indexer (its own schemas, never billing). Neither can disable a
-- trigger, set session_replication_role, truncate, alter or drop what it did not create.
--   hanzo_app, hanzo_indexer              NOLOGIN: the rights
--   hanzo_app_user, hanzo_indexer_user    LOGIN members without a password, for trust auth on a
--                                         development machine; production sets passwords or
--                                         makes its own members (README, "Database roles")
-- hanzo_indexer_user logs in as hanzo_indexer (its `role` setting), so every schema, table and
-- view Ponder makes belongs to hanzo_indexer whichever member made it, and the next deploy's
-- indexer may replace those views and drop old builds' schemas.
--
-- Roles belong to the cluster, not the database: every database of the cluster (tests make one
-- per test file, several runs at once) shares them. Each is made only when missing; a concurrent
-- migration of another database that makes it first raises duplicate_object, or unique_violation
-- once it commits, and that is fine. A migrator without CREATEROLE works when they exist already.
do $$
begin
  if not exists (select from pg_roles where rolname = 'hanzo_app') then
    begin
      create role hanzo_app nologin;
    exception when duplicate_object or unique_violation then null;
    end;
  end if;
  if not exists (select from pg_roles where rolname = 'hanzo_indexer') then
    begin
      create role hanzo_indexer nologin;
    exception when duplicate_object or unique_violation then null;
    end;
  end if;
  if not exists (select from pg_roles where rolname = 'hanzo_app_user') then
    begin
      create role hanzo_app_user login in role hanzo_app;
    exception when duplicate_object or unique_violation then null;
    end;
  end if;
  if not exists (select from pg_roles where rolname = 'hanzo_indexer_user') then
    begin
      create role hanzo_indexer_user login in role hanzo_indexer;
      alter role hanzo_indexer_user set role = 'hanzo_indexer';
    exception when duplicate_object or unique_violation then null;
    end;
  end if;
end $$;

-- Ponder makes a schema per build, ponder_sync and its views schema. (A database made with
-- CREATE DATABASE … TEMPLATE does not copy this grant: whoever clones grants it again.)
do $$
begin
  execute format('grant create on database %I to hanzo_indexer', current_database());
end $$;

-- Ponder's schemas made before this migration belong to whoever the indexer connected as (the
-- superuser): they pass to hanzo_indexer with everything in them, so that the indexer can go on
-- with them. Its schemas are the ones holding a `_ponder_meta` relation (a table in a build's
-- schema, a view in the views schema) and ponder_sync; the app reads the views schema.
do $$
declare
  s record;
  o record;
begin
  for s in
    select n.oid, n.nspname,
           exists (select from pg_class c where c.relnamespace = n.oid and c.relname = '_ponder_meta' and c.relkind = 'v') as is_views
    from pg_namespace n
    where n.nspname = 'ponder_sync'
       or exists (select from pg_class c where c.relnamespace = n.oid and c.relname = '_ponder_meta')
  loop
    execute format('alter schema %I owner to hanzo_indexer', s.nspname);
    -- Sequences that belong to a column follow their table.
    for o in
      select c.relname, c.relkind from pg_class c
      where c.relnamespace = s.oid and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
        and (c.relkind <> 'S' or not exists (
          select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')))
    loop
      execute format('alter %s %I.%I owner to hanzo_indexer',
        case o.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                       when 'f' then 'foreign table' else 'table' end,
        s.nspname, o.relname);
    end loop;
    for o in select p.oid::regprocedure as fn, p.prokind from pg_proc p where p.pronamespace = s.oid loop
      execute format('alter %s %s owner to hanzo_indexer',
        case o.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, o.fn);
    end loop;
    -- Enums and domains (a table's row type follows its table, an array type its element).
    for o in select t.oid::regtype as ty from pg_type t where t.typnamespace = s.oid and t.typtype in ('e', 'd') loop
      execute format('alter type %s owner to hanzo_indexer', o.ty);
    end loop;
    if s.is_views then
      execute format('grant usage on schema %I to hanzo_app', s.nspname);
      execute format('grant select on all tables in schema %I to hanzo_app', s.nspname);
    end if;
  end loop;
end $$;
