// Removes the one-time setup token from the address bar once the server has
// accepted it (it is kept in a secure cookie), so it does not linger in the
// browser history or get copied along with the URL.
(function () {
  var url = new URL(window.location.href);
  if (url.searchParams.has("token")) {
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();
