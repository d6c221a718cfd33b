// Wires GraphiQL to this server: HTTP for queries and mutations, graphql-ws for subscriptions.
// The access token goes in the Headers tab as {"Authorization": "Bearer <accessToken>"}; it is
// also sent in connection_init for subscriptions.
(function () {
  var origin = window.location.origin;
  var wsOrigin = origin.replace(/^http/, 'ws');
  var headersKey = 'graphiql:headers';

  function currentAuthorization() {
    try {
      var headers = JSON.parse(window.localStorage.getItem(headersKey) || '{}');
      return headers.Authorization || headers.authorization || null;
    } catch (e) {
      return null;
    }
  }

  var wsClient = graphqlWs.createClient({
    url: wsOrigin + '/api/v1/graphql/ws',
    lazy: true,
    connectionParams: function () {
      var auth = currentAuthorization();
      return auth ? { authorization: auth } : {};
    },
  });

  var fetcher = GraphiQL.createFetcher({
    url: origin + '/api/v1/graphql',
    wsClient: wsClient,
  });

  var defaultQuery = [
    '# Welcome to Fahwa.',
    '#',
    '# 1. Run LogIn below (the demo tenant is "demo"; `fahwa serve --demo` printed the passwords).',
    '# 2. Copy accessToken into the Headers tab: {"Authorization": "Bearer <accessToken>"}',
    '# 3. Run Me, Team or any other operation.',
    '',
    'mutation LogIn {',
    '  logIn(input: { tenantSlug: "demo", email: "owner@demo.fahwa.dev", password: "demo-owner-password" }) {',
    '    accessToken',
    '    refreshToken',
    '    accessTokenExpiresAt',
    '    user { id name email role }',
    '  }',
    '}',
    '',
    'query Me {',
    '  me { id name email role permissions tenant { id name slug timezone currency } }',
    '}',
    '',
    'query Team {',
    '  tenant { id name members(first: 100) { totalCount edges { node { id name role } } } }',
    '}',
    '',
  ].join('\n');

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: true,
    })
  );
})();
