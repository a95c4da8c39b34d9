/** Client-side navigation: the SPA listens for popstate and re-renders the page. */
export function navigate(path: string) {
  history.pushState(null, '', path);
  window.dispatchEvent(new Event('popstate'));
}
