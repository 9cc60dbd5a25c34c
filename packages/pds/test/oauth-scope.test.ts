/**
 * OAuth scopes: Portage's reading of granted scopes (oauth/scope.ts) answers every question the
 * same way as the reference's (@atproto/oauth-scopes, ScopePermissionsTransition), and the scope
 * strings it accepts and refuses at PAR are the ones the reference parses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScopePermissionsTransition } from '@atproto/oauth-scopes';
import { isKnownScope, OAuthPermissions } from '../src/oauth/scope.ts';

const GRANTS = [
  'atproto',
  'atproto transition:generic',
  'atproto transition:chat.bsky',
  'atproto transition:email',
  'atproto repo:app.bsky.feed.post',
  'atproto repo:app.bsky.feed.like?action=create',
  'atproto repo?collection=app.bsky.feed.post&collection=app.bsky.graph.follow&action=delete&action=update',
  'atproto repo:*?action=create',
  'atproto blob:image/*',
  'atproto blob?accept=video/mp4&accept=image/png',
  'atproto blob:*/*',
  'atproto rpc:app.bsky.feed.getTimeline?aud=did:web:api.bsky.app%23bsky_appview',
  'atproto rpc:*?aud=did:web:api.bsky.chat%23bsky_chat',
  'atproto rpc?lxm=app.bsky.actor.getProfile&lxm=app.bsky.feed.getFeed&aud=*',
  'atproto account:email',
  'atproto account:email?action=manage',
  'atproto account:status?action=manage account:repo',
  'atproto identity:handle',
  'atproto identity:*',
];

const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow', 'com.example.thing'];
const ACTIONS = ['create', 'update', 'delete'] as const;
const MIMES = ['image/png', 'image/jpeg', 'video/mp4', 'text/plain'];
const AUDS = ['did:web:api.bsky.app#bsky_appview', 'did:web:api.bsky.chat#bsky_chat', 'did:web:other.example#svc'];
const LXMS = [
  'app.bsky.feed.getTimeline',
  'app.bsky.actor.getProfile',
  'app.bsky.feed.getFeed',
  'chat.bsky.convo.listConvos',
];

describe('OAuth scopes against @atproto/oauth-scopes', () => {
  it('allows and refuses exactly what the reference does', () => {
    let checks = 0;
    for (const grant of GRANTS) {
      const ours = new OAuthPermissions(grant);
      const theirs = new ScopePermissionsTransition(grant.split(' '));
      const same = (what: string, a: boolean, b: boolean) => {
        checks++;
        assert.equal(a, b, `${grant}: ${what}`);
      };
      for (const collection of COLLECTIONS) {
        for (const action of ACTIONS) {
          same(
            `repo ${action} ${collection}`,
            ours.allowsRepo(collection, action),
            theirs.allowsRepo({ collection, action }),
          );
        }
      }
      for (const mime of MIMES) same(`blob ${mime}`, ours.allowsBlob(mime), theirs.allowsBlob({ mime }));
      for (const aud of AUDS) {
        for (const lxm of LXMS) {
          same(
            `rpc ${lxm} at ${aud}`,
            ours.allowsRpc(aud, lxm),
            theirs.allowsRpc({ aud: aud as `did:${string}#${string}`, lxm }),
          );
        }
      }
      for (const attr of ['email', 'repo', 'status'] as const) {
        for (const action of ['read', 'manage'] as const) {
          same(`account ${attr} ${action}`, ours.allowsAccount(attr, action), theirs.allowsAccount({ attr, action }));
        }
      }
      for (const attr of ['handle', '*'] as const) {
        same(`identity ${attr}`, ours.allowsIdentity(attr), theirs.allowsIdentity({ attr }));
      }
    }
    assert.equal(
      checks,
      GRANTS.length * (COLLECTIONS.length * ACTIONS.length + MIMES.length + AUDS.length * LXMS.length + 6 + 2),
    );
  });

  it('accepts the scope strings the reference parses and refuses malformed ones', () => {
    for (const grant of GRANTS) for (const token of grant.split(' ')) assert.ok(isKnownScope(token), token);
    for (const bad of [
      'repo',
      'repo:not a nsid',
      'repo:app.bsky.feed.post?action=publish',
      'blob:image',
      'rpc:app.bsky.feed.getTimeline',
      'rpc:*?aud=*',
      'account:password',
      'identity:email',
      'transition:everything',
      'com.atproto.access',
    ]) {
      assert.equal(isKnownScope(bad), false, bad);
    }
  });

  it('describes a grant in plain words for the consent page', () => {
    assert.deepEqual(new OAuthPermissions('atproto repo:app.bsky.feed.like?action=create').describe(), [
      'Create records in app.bsky.feed.like',
    ]);
    assert.deepEqual(new OAuthPermissions('atproto').describe(), ['Know who you are (your DID and handle)']);
  });
});
