// A real OpenID Connect provider (the `oidc-provider` package, with its development sign-in
// pages) for kefu's sign-in tests. Nothing here is kefu code: it is the other side of the
// protocol, configured the way a merchant's identity provider would be.
//
// Environment:
//   PORT           where to listen on 127.0.0.1 (0: any free port)
//   CLIENT_ID      the one registered client
//   CLIENT_SECRET  its secret (client_secret_basic at the token endpoint)
//   REDIRECT_URI   its callback
//
// Accounts: whatever login is typed is the account. `someone@example.test` signs in with
// that address, verified; `unverified:someone@example.test` with the address not verified;
// `noemail:anything` without an address at all. The password is ignored (development pages).
//
// Prints `listening <issuer>` once it accepts connections.
import Provider from 'oidc-provider';

const { PORT = '0', CLIENT_ID, CLIENT_SECRET, REDIRECT_URI } = process.env;
if (!CLIENT_ID || !CLIENT_SECRET || !REDIRECT_URI) {
  console.error('CLIENT_ID, CLIENT_SECRET and REDIRECT_URI are required');
  process.exit(2);
}

function account(id) {
  let email = id;
  let verified = true;
  if (id.startsWith('unverified:')) {
    email = id.slice('unverified:'.length);
    verified = false;
  } else if (id.startsWith('noemail:')) {
    email = undefined;
  }
  return {
    accountId: id,
    async claims() {
      const claims = { sub: id, name: email ? email.split('@')[0] : id };
      if (email) Object.assign(claims, { email, email_verified: verified });
      return claims;
    },
  };
}

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // kefu is a first-party client here: consent is implied, only the sign-in page is shown.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  findAccount: (ctx, id) => account(id),
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
};

const server = (await import('node:http')).createServer();
server.listen(Number(PORT), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  // Development interactions would otherwise nag on every request.
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`listening ${issuer}`);
});
process.on('SIGTERM', () => process.exit(0));
