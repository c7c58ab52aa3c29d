// The follow policy (src/federation/follow-policy.ts), pure: whom a node follows, and which passive row it checks.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  chooseFollowed,
  choosePassiveCheck,
  DEFAULT_FOLLOW_PARAMS,
  dropForReciprocity,
  followsBack,
  maxFollowBacks,
  passiveCheckIntervalMs,
  type PeerFacts,
} from '../src/federation/follow-policy.js';
import { seededRandom } from '../src/federation/seeded-random.js';

const params = { ...DEFAULT_FOLLOW_PARAMS, follow: 3 };

function peer(url: string, facts: Partial<PeerFacts> = {}): PeerFacts {
  return { url, host: new URL(url).hostname, seed: false, verified: true, failing: false, due: false, followsUs: false, followedForMs: 0, coolingDown: false, addedAsFollower: false, ...facts };
}


describe('chooseFollowed', () => {
  test('seeds first, then followers, then verified peers, then candidates', () => {
    const peers = [
      peer('https://c.example', { verified: false, due: true }),
      peer('https://v.example'),
      peer('https://f.example', { followsUs: true }),
      peer('https://s.example', { seed: true }),
    ];
    assert.deepEqual(chooseFollowed([], peers, { ...params, follow: 4 }, seededRandom(1)), [
      'https://s.example',
      'https://f.example',
      'https://v.example',
      'https://c.example',
    ]);
    assert.deepEqual(chooseFollowed([], peers, { ...params, follow: 2 }, seededRandom(1)), ['https://s.example', 'https://f.example']);
  });

  test('keeps healthy members against newcomers chosen at random', () => {
    const peers = [peer('https://a.example'), peer('https://b.example'), peer('https://c.example'), peer('https://new.example')];
    const kept = chooseFollowed(['https://a.example', 'https://b.example', 'https://c.example'], peers, params, seededRandom(2));
    assert.deepEqual(kept.sort(), ['https://a.example', 'https://b.example', 'https://c.example']);
  });

  test('a follower takes the place of a member chosen at random (follow-back), never of a seed or another follower', () => {
    const peers = [
      peer('https://s.example', { seed: true }),
      peer('https://f.example', { followsUs: true }),
      peer('https://r.example'),
      peer('https://g.example', { followsUs: true }),
    ];
    const next = chooseFollowed(['https://s.example', 'https://f.example', 'https://r.example'], peers, params, seededRandom(6));
    assert.deepEqual(next.sort(), ['https://f.example', 'https://g.example', 'https://s.example']);
    // With no random pick left to replace, a further follower waits for a place.
    const more = [...peers, peer('https://h.example', { followsUs: true })];
    const full = chooseFollowed(next, more, params, seededRandom(6));
    assert.deepEqual(full.sort(), next.sort());
  });

  test('links are symmetric: a member that does not follow back within the grace is replaced, one at a time, by one not cooling down', () => {
    const grace = params.reciprocationGraceMs;
    const members = ['https://s.example', 'https://hub.example', 'https://young.example'];
    const peers = [
      peer('https://s.example', { seed: true, followsUs: true, followedForMs: grace + 1 }),
      peer('https://hub.example', { followedForMs: grace + 1 }),
      peer('https://young.example', { followedForMs: grace - 1 }),
      peer('https://rested.example', { coolingDown: true }),
      peer('https://fresh.example'),
    ];
    assert.deepEqual(chooseFollowed(members, peers, params, seededRandom(7)).sort(), ['https://fresh.example', 'https://s.example', 'https://young.example']);
    // A seed that does not follow back goes too, when another can take its place.
    const busySeed = peers.map((p) => (p.seed ? { ...p, followsUs: false } : p.url === 'https://hub.example' ? { ...p, followsUs: true } : p));
    assert.equal(dropForReciprocity(new Set(members), busySeed, params, seededRandom(7)), 'https://s.example');
    // Nothing to move to, or a node without a public URL (nobody can follow it back): it keeps what it has.
    const nowhere = peers.filter((p) => members.includes(p.url));
    assert.equal(dropForReciprocity(new Set(members), nowhere, params, seededRandom(7)), undefined);
    assert.equal(dropForReciprocity(new Set(members), peers, { ...params, reciprocity: false }, seededRandom(7)), undefined);
  });

  test('strangers announcing themselves take at most 4 of 6 places: the rest are the node\'s own choices (no eclipse)', () => {
    const announcers = Array.from({ length: 20 }, (_, i) => peer(`https://attacker.example:${9000 + i}`, { followsUs: true }));
    const honest = [peer('https://one.example'), peer('https://two.example'), peer('https://three.example')];
    const six = { ...params, follow: 6 };
    assert.equal(maxFollowBacks(six), 4);
    for (let seed = 0; seed < 10; seed++) {
      const chosen = chooseFollowed([], [...announcers, ...honest], six, seededRandom(seed));
      assert.equal(chosen.length, 6);
      assert.equal(chosen.filter((url) => url.includes('attacker')).length, 4, chosen.join(' '));
    }
    // Members that came in as follow-backs count too; one this node chose, that then followed back, does not.
    const members = ['https://attacker.example:9000', 'https://attacker.example:9001', 'https://one.example'];
    const facts = [...announcers.map((p, i) => (i < 2 ? { ...p, addedAsFollower: true } : p)), ...honest.map((p) => (p.url === 'https://one.example' ? { ...p, followsUs: true } : p))];
    const next = chooseFollowed(members, facts, six, seededRandom(3));
    assert.ok(members.every((url) => next.includes(url)));
    assert.equal(next.filter((url) => url.includes('attacker')).length, 4);
    assert.deepEqual([maxFollowBacks({ ...params, follow: 1 }), maxFollowBacks({ ...params, follow: 3 })], [1, 2]);
  });

  test('replaces a failing member by a live peer at once', () => {
    const peers = [peer('https://a.example', { failing: true }), peer('https://b.example'), peer('https://live.example')];
    const next = chooseFollowed(['https://a.example', 'https://b.example'], peers, { ...params, follow: 2 }, seededRandom(3));
    assert.deepEqual(next, ['https://b.example', 'https://live.example']);
  });

  test('keeps a failing member when nothing live can take its place (a small mesh keeps every peer)', () => {
    const peers = [peer('https://a.example', { failing: true }), peer('https://b.example')];
    assert.deepEqual(chooseFollowed(['https://a.example', 'https://b.example'], peers, params, seededRandom(4)).sort(), ['https://a.example', 'https://b.example']);
  });

  test('with only failing rows, tries those whose backoff ran out, seeds first', () => {
    const peers = [
      peer('https://x.example', { failing: true, due: true }),
      peer('https://s.example', { failing: true, due: true, seed: true }),
      peer('https://y.example', { failing: true, due: false }),
    ];
    assert.deepEqual(chooseFollowed([], peers, params, seededRandom(5)), ['https://s.example', 'https://x.example']);
  });

  test('spreads across hosts: one host with many rows does not take every place', () => {
    const peers = [
      ...Array.from({ length: 50 }, (_, i) => peer(`https://crowd.example:${1000 + i}`)),
      peer('https://one.example'),
      peer('https://two.example'),
    ];
    for (let seed = 0; seed < 20; seed++) {
      const chosen = chooseFollowed([], peers, params, seededRandom(seed));
      const hosts = new Set(chosen.map((url) => new URL(url).hostname));
      assert.equal(hosts.size, 3, `seed ${seed}: ${chosen}`);
    }
  });

  test('properties: at most follow peers, no duplicates, only rows of the table, healthy members kept, same seed same set', () => {
    const arbPeer = fc.record({
      url: fc.integer({ min: 0, max: 40 }).map((n) => `https://h${n % 7}.example:${8000 + n}`),
      seed: fc.boolean(),
      verified: fc.boolean(),
      failing: fc.boolean(),
      due: fc.boolean(),
      followsUs: fc.boolean(),
      addedAsFollower: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(arbPeer, { selector: (p) => p.url, maxLength: 40 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 8 }),
        fc.integer(),
        (rows, follow, memberIndexes, seed) => {
          const peers: PeerFacts[] = rows.map((r) => ({ ...r, host: new URL(r.url).hostname, followedForMs: 0, coolingDown: false }));
          const current = [...new Set(memberIndexes.map((i) => `https://h${i % 7}.example:${8000 + i}`))].slice(0, follow);
          const p = { ...params, follow };
          const chosen = chooseFollowed(current, peers, p, seededRandom(seed));
          assert.ok(chosen.length <= follow);
          assert.equal(new Set(chosen).size, chosen.length);
          const urls = new Set(peers.map((x) => x.url));
          for (const url of chosen) assert.ok(urls.has(url));
          const reciprocal = (x: PeerFacts) => (x.seed || x.followsUs) && !x.failing;
          const isFollowBack = (x: PeerFacts) => x.followsUs && (current.includes(x.url) ? x.addedAsFollower : !x.seed);
          const chosenFollowBacks = chosen.filter((url) => isFollowBack(peers.find((x) => x.url === url)!)).length;
          assert.ok(chosenFollowBacks <= maxFollowBacks(p));
          for (const url of current) {
            const row = peers.find((x) => x.url === url);
            if (!row || row.failing || chosen.includes(url)) continue;
            // A healthy member leaves only for seeds and followers, and only a member chosen at random (or a
            // follow-back past the follow-backs' share of the places).
            if (reciprocal(row)) {
              assert.ok(isFollowBack(row) && chosenFollowBacks === maxFollowBacks(p), `healthy seed or follower ${url} dropped`);
              continue;
            }
            assert.equal(chosen.length, follow);
            for (const kept of chosen) {
              const facts = peers.find((x) => x.url === kept)!;
              assert.ok(reciprocal(facts) || current.includes(kept), `${url} dropped for ${kept}`);
            }
          }
          // Full whenever the table has enough rows that are not failing (a candidate never contacted counts once it
          // is due), follow-backs counting up to their share of the places only.
          const eligible = peers.filter((x) => !x.failing && (x.verified || x.due || x.seed || x.followsUs || current.includes(x.url)));
          const followBacks = eligible.filter(isFollowBack).length;
          const fillable = eligible.length - followBacks + Math.min(followBacks, maxFollowBacks(p));
          assert.ok(chosen.length >= Math.min(follow, fillable), `${chosen.length} of ${follow} places taken`);
          assert.deepEqual(chooseFollowed(current, peers, p, seededRandom(seed)), chosen);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('passive checks', () => {
  test('check one due row that is not followed, at random', () => {
    const peers = [peer('https://a.example', { due: true }), peer('https://b.example', { due: true }), peer('https://c.example', { due: false })];
    const seen = new Set<string>();
    const random = seededRandom(9);
    for (let i = 0; i < 50; i++) seen.add(choosePassiveCheck(peers, new Set(['https://a.example']), random)!);
    assert.deepEqual([...seen], ['https://b.example']);
    assert.equal(choosePassiveCheck(peers, new Set(['https://a.example', 'https://b.example']), random), undefined);
  });

  test('a fixed budget a minute, whatever the table', () => {
    assert.equal(passiveCheckIntervalMs({ ...params, passiveChecksPerMinute: 6 }), 10_000);
    assert.equal(passiveCheckIntervalMs({ ...params, passiveChecksPerMinute: 0 }), Infinity);
  });

  test('a follower not yet followed makes the set be chosen again', () => {
    assert.equal(followsBack(new Set(['a', 'b']), 'c'), true);
    assert.equal(followsBack(new Set(['a', 'c']), 'c'), false);
  });
});
