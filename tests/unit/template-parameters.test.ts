import { ROOT } from '../../local/paths';
import { parameterProblem, readTemplate, resolver, TemplateError } from '../../local/template';

/** CloudFormation refuses a stack whose parameter breaks its constraints; the local stack does too. */
const template = readTemplate(ROOT);

test('values within the constraints pass; each kind of constraint refuses in the words CloudFormation uses', () => {
  const p = template.Parameters!;
  expect(parameterProblem('RowRangeSize', p.RowRangeSize, '1')).toBeUndefined();
  expect(parameterProblem('RowRangeSize', p.RowRangeSize, '0')).toBe("Parameter 'RowRangeSize' must be a number not less than 1");
  expect(parameterProblem('InferenceMemorySize', p.InferenceMemorySize, '20000')).toBe(
    "Parameter 'InferenceMemorySize' must be a number not greater than 10240",
  );
  expect(parameterProblem('InferenceTimeout', p.InferenceTimeout, 'ten')).toBe("Parameter 'InferenceTimeout' must be a number");
  expect(parameterProblem('Architecture', p.Architecture, 'riscv64')).toBe("Parameter 'Architecture' must be one of AllowedValues");
  expect(parameterProblem('AlarmEmail', p.AlarmEmail, '')).toBeUndefined();
  expect(parameterProblem('AlarmEmail', p.AlarmEmail, 'ops@example.org')).toBeUndefined();
  expect(parameterProblem('AlarmEmail', p.AlarmEmail, 'two@a.org,three@b.org x')).toBe(
    'Malformed input-Parameter AlarmEmail must be one e-mail address, or empty for none.',
  );
});

test('the local stack is not made with a parameter out of its range', () => {
  expect(() => resolver(template, ROOT, { overrides: { RowRangeSize: '0' } })).toThrow(
    new TemplateError("template.yaml: Parameter 'RowRangeSize' must be a number not less than 1"),
  );
  expect(() => resolver(template, ROOT, { overrides: { RowRangeSize: '64' } })).not.toThrow();
});
