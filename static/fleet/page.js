// Pages without data of their own (login, not allowed): the header's clock.
import { startPage } from "./fleet-core.js";

startPage();
