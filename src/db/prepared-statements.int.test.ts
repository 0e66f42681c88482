import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findService } from '../../test/support/services.ts';
import { queryPrepared } from './prepared-statements.ts';

const postgres = await findService('postgres');

describe.skipIf(postgres.skipReason)(
  `prepared statements on the Postgres server${postgres.skipReason}`,
  () => {
    let client: pg.Client;
    const prepared = async () =>
      (await client.query<{ statement: string }>('select statement from pg_prepared_statements')).rows.map(
        (row) => row.statement,
      );

    beforeAll(async () => {
      client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      await client.query('create temporary table things (id int primary key, name text)');
      await client.query(`insert into things values (1, 'one'), (2, 'two')`);
    });
    afterAll(async () => {
      await client?.end();
    });

    it('prepares a parameterised statement once per connection and reuses it', async () => {
      const text = 'select name from things where id = $1';
      expect((await queryPrepared(client, text, [1])).rows).toEqual([{ name: 'one' }]);
      expect((await queryPrepared(client, text, [2])).rows).toEqual([{ name: 'two' }]);
      expect((await prepared()).filter((statement) => statement === text)).toHaveLength(1);
    });

    it('leaves statements without parameters and statements selecting * unprepared', async () => {
      await client.query('deallocate all');
      const before = await prepared();
      await queryPrepared(client, 'select count(*) as n from things', []);
      await queryPrepared(client, 'select * from things where id = $1', [1]);
      await queryPrepared(client, 'select "t".* from things as "t" where "t"."id" = $1', [1]);
      await queryPrepared(client, 'update things set name = name where id = $1 returning *', [1]);
      expect(await prepared()).toEqual(before);
      // count(*) is not a star over columns: its result type never follows the table's.
      await queryPrepared(client, 'select count(*) as n from things where id > $1', [0]);
      expect(await prepared()).toContain('select count(*) as n from things where id > $1');
    });

    it('keeps at most `capacity` statements on a connection', async () => {
      for (let i = 0; i < 12; i++) {
        const { rows } = await queryPrepared(client, `select $1::int + ${i} as n`, [1], 5);
        expect(rows).toEqual([{ n: 1 + i }]);
      }
      expect((await prepared()).length).toBeLessThanOrEqual(5);
      // What was deallocated is prepared again when it comes back.
      expect((await queryPrepared(client, 'select $1::int + 0 as n', [7], 5)).rows).toEqual([{ n: 7 }]);
    });

    it('survives a column type change under a cached plan: retried at once outside a transaction', async () => {
      await client.query('create temporary table shapes (id int primary key, size int)');
      await client.query('insert into shapes values (1, 10)');
      const text = 'select size from shapes where id = $1';
      expect((await queryPrepared(client, text, [1])).rows).toEqual([{ size: 10 }]);
      await client.query('alter table shapes alter column size type text');
      expect((await queryPrepared(client, text, [1])).rows).toEqual([{ size: '10' }]);
    });

    it('inside a transaction the caller sees the refusal once, and the next use prepares afresh', async () => {
      await client.query('create temporary table sizes (id int primary key, size int)');
      await client.query('insert into sizes values (1, 10)');
      const text = 'select size from sizes where id = $1';
      await queryPrepared(client, text, [1]);
      await client.query('alter table sizes alter column size type bigint');
      await client.query('begin');
      await expect(queryPrepared(client, text, [1])).rejects.toMatchObject({ code: '0A000' });
      await client.query('rollback');
      expect((await queryPrepared(client, text, [1])).rows).toEqual([{ size: '10' }]);
    });
  },
);
