// The one API client of the page, configured by the page's <meta> tags.
import { Api, pageConfig } from "./api";

export const config = pageConfig();
export const api = new Api(config.base, config.auth);
