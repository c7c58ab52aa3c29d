// The link policy (src/federation/link-policy.ts), pure: when an eager link is pruned, and when a node's link follows
// the switch its peer told. Properties over random link sets, with fast-check.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_FOLLOW_PARAMS } from '../src/federation/follow-policy.js';
import { fetchDueAt, followSwitch, initialMode, pruneAfterLine, type LinkMode, type LinkState } from '../src/federation/link-policy.js';

const params = DEFAULT_FOLLOW_PARAMS;
const links = (modes: LinkMode[]): Map<string, LinkState> => new Map(modes.map((mode, i) => [`https://p${i}.example`, { mode, changedAt: 0 }]));
const eagerCount = (map: ReadonlyMap<string, LinkState>) => [...map.values()].filter((l) => l.mode === 'eager').length;
const modesArb = fc.array(fc.constantFrom<LinkMode>('eager', 'lazy'), { minLength: 1, maxLength: 12 });

describe('pruneAfterLine', () => {
  test('prunes an eager link whose line held cards and no first copy, while another eager link remains', () => {
    const map = links(['eager', 'eager', 'lazy']);
    assert.equal(pruneAfterLine(params, map, 'https://p0.example', { cards: 3, firstCopies: 0 }), true);
    assert.equal(pruneAfterLine(params, map, 'https://p0.example', { cards: 3, firstCopies: 1 }), false, 'a first copy keeps it');
    assert.equal(pruneAfterLine(params, map, 'https://p0.example', { cards: 0, firstCopies: 0 }), false, 'a line of nothing says nothing');
    assert.equal(pruneAfterLine(params, map, 'https://p2.example', { cards: 3, firstCopies: 0 }), false, 'a lazy link is not pruned again');
    assert.equal(pruneAfterLine(params, links(['eager', 'lazy']), 'https://p0.example', { cards: 3, firstCopies: 0 }), false, 'the only eager link stays');
    assert.equal(pruneAfterLine({ ...params, lazyLinks: false }, map, 'https://p0.example', { cards: 3, firstCopies: 0 }), false, 'no lazy links: no prune');
  });

  test('never leaves a node without an eager link, and prunes only lines without a first copy', () => {
    fc.assert(
      fc.property(modesArb, fc.nat(11), fc.nat(5), fc.nat(5), (modes, pick, cards, firstCopies) => {
        const map = links(modes);
        const url = `https://p${pick % modes.length}.example`;
        const pruned = pruneAfterLine(params, map, url, { cards, firstCopies: Math.min(firstCopies, cards) });
        if (!pruned) return;
        assert.ok(eagerCount(map) >= 2, 'another eager link remains');
        assert.equal(map.get(url)!.mode, 'eager');
        assert.ok(cards > 0 && Math.min(firstCopies, cards) === 0);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('followSwitch', () => {
  test("follows a peer's graft always, its prune unless the link is the node's only eager one", () => {
    assert.equal(followSwitch(params, links(['lazy', 'eager']), 'https://p0.example', 'eager'), 'eager');
    assert.equal(followSwitch(params, links(['eager', 'eager']), 'https://p0.example', 'lazy'), 'lazy');
    assert.equal(followSwitch(params, links(['eager', 'lazy']), 'https://p0.example', 'lazy'), undefined, 'its only eager link');
    assert.equal(followSwitch(params, links(['eager']), 'https://p0.example', 'eager'), undefined, 'already so');
    assert.equal(followSwitch(params, links(['eager']), 'https://unknown.example', 'lazy'), undefined, 'a peer not followed');
    assert.equal(followSwitch({ ...params, lazyLinks: false }, links(['lazy', 'eager']), 'https://p0.example', 'eager'), undefined);
  });

  test('two nodes that switch opposite ways at once settle after following each other once', () => {
    fc.assert(
      fc.property(modesArb, modesArb, (ours, theirs) => {
        // a and b link to each other (p0 of each), both eager; a prunes b while b grafts a... from lazy.
        const a = links(['eager', ...ours]);
        const b = links(['lazy', ...theirs]);
        a.get('https://p0.example')!.mode = 'lazy'; // a's own prune, told to b
        b.get('https://p0.example')!.mode = 'eager'; // b's own graft, told to a
        const aFollows = followSwitch(params, a, 'https://p0.example', 'eager');
        const bFollows = followSwitch(params, b, 'https://p0.example', 'lazy');
        if (aFollows) a.get('https://p0.example')!.mode = aFollows;
        if (bFollows) b.get('https://p0.example')!.mode = bFollows;
        // Switches made to follow are not told: nothing more happens, whatever the outcome.
        assert.ok(eagerCount(a) >= 1 && eagerCount(b) >= 1, 'each keeps an eager link');
      }),
      { numRuns: 1000 },
    );
  });
});

test('a new link starts eager; an announced version is due a grace after it was announced', () => {
  assert.equal(initialMode(), 'eager');
  assert.equal(fetchDueAt(params, 1_000), 1_000 + params.lazyGraceMs);
});
