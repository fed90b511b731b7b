import { DomainError, DomainErrorKind } from '../shared/domain-error';

/** RFC 9457 problem details. `type` is `/problems/<stable code>`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export interface FieldError {
  field: string;
  message: string;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const problemType = (code: string) => `/problems/${code}`;

const statusOfKind: Record<DomainErrorKind, number> = {
  conflict: 409,
  'not-found': 404,
  invalid: 400,
  locked: 423,
  unauthorized: 401,
  unavailable: 503,
};

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  423: 'Locked',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(
  status: number,
  code: string,
  detail: string,
  extensions: Record<string, unknown> = {},
): Problem {
  return {
    type: problemType(code),
    title: titles[status] ?? 'Error',
    status,
    detail,
    ...extensions,
  };
}

export function problemFromDomainError(error: DomainError): Problem {
  return problem(statusOfKind[error.kind], error.code, error.message, error.extensions);
}

/** Thrown where a handler must answer with a specific problem. */
export class ProblemException extends Error {
  constructor(
    readonly problem: Problem,
    readonly headers: Record<string, string> = {},
  ) {
    super(problem.detail);
    this.name = 'ProblemException';
  }
}

export function validationProblem(errors: FieldError[]): ProblemException {
  return new ProblemException(
    problem(400, 'validation-failed', 'The request is not valid; see errors.', { errors }),
  );
}
